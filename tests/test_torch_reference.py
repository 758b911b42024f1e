"""Consistency tests of coconut/reference/torch_coconut.py (the PyTorch ground truth).

Tiny random GPT-2 models (2 layers, 3 heads, width 48, vocabulary 97 + 3 added
tokens), dropout 0, eval mode.  Every check has an explicit tolerance.
"""

import copy
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from coconut.reference import torch_coconut as tr  # noqa: E402

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

torch.set_num_threads(1)

EOS = 96  # also the pad id
BOT, EOT, LAT = 97, 98, 99
VOCAB = 100


def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=48,
        n_layer=2,
        n_head=3,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    hf = GPT2LMHeadModel(cfg)
    # larger weights than GPT-2's 0.02 init so that attention is far from uniform and
    # the thoughts genuinely influence the outputs
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.15)
    hf.eval()
    return hf.to(dtype)


def make_example(rng, q_len, k, n_steps_tok):
    q = rng.integers(0, 96, size=q_len).tolist()
    tail = rng.integers(0, 96, size=n_steps_tok).tolist() + [EOS]
    ids = q + [BOT] + [LAT] * k + [EOT] + tail
    labels = [-100] * (q_len + k + 2) + tail
    return {"input_ids": ids, "labels": labels}


def mixed_batch(seed=1):
    """Thought counts 0, 1, 3 with different question and tail lengths (left and
    right padding both occur)."""
    rng = np.random.default_rng(seed)
    exs = [
        make_example(rng, 5, 0, 6),
        make_example(rng, 3, 1, 7),
        make_example(rng, 6, 3, 2),
        make_example(rng, 4, 3, 5),
    ]
    return tr.reference_collate(exs, LAT, pad_id=EOS)


def naive_forward(hf, batch, detach=False):
    """Independent re-enactment: every pass recomputes the WHOLE prefix without a
    cache; the latent columns are filled with torch.where; the final logits come from
    one full forward over the final embeddings."""
    ids, am, pos, lab = (batch[k] for k in ("input_ids", "attention_mask", "position_ids", "labels"))
    emb = hf.transformer.wte(ids)
    is_lat = ids == LAT
    ranks = torch.cumsum(is_lat.long(), dim=1) - 1  # index of each latent within its row
    n_max = int(is_lat.sum(1).max())
    thoughts = [[] for _ in range(ids.shape[0])]
    if n_max:
        first = int(is_lat.long().argmax(1)[is_lat.any(1)].min())
        for j in range(n_max):
            upto = first + j
            h = hf.transformer(
                inputs_embeds=emb[:, :upto], attention_mask=am[:, :upto], position_ids=pos[:, :upto]
            ).last_hidden_state
            if detach:
                h = h.detach()
            # shift right by one: the candidate for column c is h[c-1]
            cand = torch.cat([emb[:, :1], h, emb[:, upto + 1:]], dim=1)
            sel = is_lat & (ranks == j)
            emb = torch.where(sel.unsqueeze(-1), cand, emb)
            for b in range(ids.shape[0]):
                cols = torch.nonzero(sel[b]).flatten().tolist()
                for c in cols:
                    thoughts[b].append(cand[b, c].detach().numpy().copy())
    logits = hf(inputs_embeds=emb, attention_mask=am, position_ids=pos).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), lab[:, 1:].reshape(-1), ignore_index=-100
    )
    return loss, logits, thoughts


def rel(a, b):
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# ----------------------------------------------------------------------------------


def test_hidden_states_last_is_after_ln_f():
    hf = make_model()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    out = hf(input_ids=ids, output_hidden_states=True)
    assert len(out.hidden_states) == hf.config.n_layer + 1
    # the last entry is the ln_f output: the LM head applied to it gives the logits,
    # and ln_f of the last block output does not change it again
    assert torch.allclose(hf.lm_head(out.hidden_states[-1]), out.logits, atol=1e-6, rtol=0)
    block_out = hf.transformer(input_ids=ids, output_hidden_states=True)
    manual = hf.transformer.wte(ids) + hf.transformer.wpe(torch.arange(5))
    for blk in hf.transformer.h:
        manual = blk(manual)
        manual = manual[0] if isinstance(manual, tuple) else manual
    assert torch.allclose(hf.transformer.ln_f(manual), out.hidden_states[-1], atol=1e-5, rtol=0)
    assert not torch.allclose(manual, out.hidden_states[-1], atol=1e-2)
    assert torch.allclose(block_out.last_hidden_state, out.hidden_states[-1], atol=0, rtol=0)


def test_crop_cache_matches_fresh_forward():
    hf = make_model()
    ids = torch.randint(0, 96, (2, 10), generator=torch.Generator().manual_seed(3))
    full = hf(input_ids=ids, use_cache=True)
    cache = full.past_key_values
    assert tr.cache_length(cache) == 10
    cache = tr.crop_cache(cache, 6)
    assert tr.cache_length(cache) == 6
    part = hf(input_ids=ids[:, 6:], past_key_values=cache, use_cache=True,
              attention_mask=torch.ones(2, 10, dtype=torch.long), position_ids=torch.arange(6, 10).repeat(2, 1))
    assert torch.allclose(part.logits, full.logits[:, 6:], atol=1e-5, rtol=1e-5)


def test_no_latents_equals_hf_forward():
    hf = make_model()
    rng = np.random.default_rng(0)
    exs = [make_example(rng, 4, 0, 5), make_example(rng, 6, 0, 2), make_example(rng, 2, 0, 8)]
    b = tr.reference_collate(exs, LAT, pad_id=EOS)
    ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
             position_ids=b["position_ids"], labels=b["labels"])
    for mode in ("continuous", "pause", "none"):
        loss, logits, thoughts = tr.coconut_forward(
            hf, b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT, mode=mode)
        assert abs(loss.item() - ref.loss.item()) <= 1e-6 * abs(ref.loss.item())
        assert rel(logits, ref.logits) <= 1e-6
        assert thoughts == [[], [], []]


def test_pause_mode_is_one_plain_forward_with_latent_embeddings():
    hf = make_model()
    b = mixed_batch()
    ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
             position_ids=b["position_ids"], labels=b["labels"])
    loss, logits, thoughts = tr.coconut_forward(
        hf, b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT, mode="pause")
    assert abs(loss.item() - ref.loss.item()) <= 1e-6 * abs(ref.loss.item())
    assert rel(logits, ref.logits) <= 1e-6
    assert all(t == [] for t in thoughts)
    # continuous mode gives a different loss on the same batch
    loss_c, _, _ = tr.coconut_forward(
        hf, b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT)
    assert abs(loss_c.item() - loss.item()) > 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-11)])
def test_multipass_equals_naive_recompute(dtype, tol):
    hf = make_model(dtype=dtype)
    b = mixed_batch()
    # the collated batch has the layout the test intends
    ids = b["input_ids"]
    assert (ids == LAT).sum(1).tolist() == [0, 1, 3, 3]
    assert b["attention_mask"][:, 0].tolist() == [1, 0, 1, 0]  # left pads present
    assert b["attention_mask"][:, -1].tolist().count(0) >= 1  # right pads present
    loss, logits, thoughts = tr.coconut_forward(
        hf, ids, b["attention_mask"], b["position_ids"], b["labels"], LAT)
    nloss, nlogits, nthoughts = naive_forward(hf, b)
    assert abs(loss.item() - nloss.item()) <= tol * abs(nloss.item())
    assert rel(logits, nlogits) <= tol
    assert [len(t) for t in thoughts] == [0, 1, 3, 3]
    for t, nt in zip(thoughts, nthoughts):
        for v, nv in zip(t, nt):
            assert v.dtype == (np.float32 if dtype == torch.float32 else np.float64)
            assert np.abs(v - nv).max() <= tol * np.abs(nv).max()
    # thought 1 of each example is h(<bot>): compare with a plain forward of the prefix
    bot_col = int((ids[2] == BOT).nonzero()[0, 0])
    h = hf.transformer(inputs_embeds=hf.transformer.wte(ids[2:3, : bot_col + 1]),
                       attention_mask=b["attention_mask"][2:3, : bot_col + 1],
                       position_ids=b["position_ids"][2:3, : bot_col + 1]).last_hidden_state
    assert np.abs(thoughts[2][0] - h[0, -1].detach().numpy()).max() <= tol * 10
    # the thoughts change the result: pause mode differs
    ploss, _, _ = tr.coconut_forward(
        hf, ids, b["attention_mask"], b["position_ids"], b["labels"], LAT, mode="pause")
    assert abs(ploss.item() - loss.item()) > 1e-4


def test_gradient_matches_naive_and_finite_difference_float64():
    hf = make_model(dtype=torch.float64)
    b = mixed_batch(seed=5)
    args = (b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT)
    params = [p for _, p in hf.named_parameters()]

    loss, _, _ = tr.coconut_forward(hf, *args)
    g = torch.autograd.grad(loss, params)
    nloss, _, _ = naive_forward(hf, b)
    ng = torch.autograd.grad(nloss, params)
    for a, c in zip(g, ng):
        assert float((a - c).abs().max()) <= 1e-9 * max(float(c.abs().max()), 1e-3)

    # directional finite difference on all parameters
    gen = torch.Generator().manual_seed(7)
    dirs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    analytic = sum(float((gi * d).sum()) for gi, d in zip(g, dirs))
    eps = 1e-5
    vals = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, dirs):
                p.add_(sign * eps * d)
        vals.append(tr.coconut_forward(hf, *args)[0].item())
        with torch.no_grad():
            for p, d in zip(params, dirs):
                p.sub_(sign * eps * d)
    numeric = (vals[0] - vals[1]) / (2 * eps)
    assert abs(numeric - analytic) <= 1e-6 * abs(analytic)


def test_gradient_flows_through_feedback():
    hf = make_model(dtype=torch.float64)
    b = mixed_batch(seed=5)
    args = (b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT)
    params = dict(hf.named_parameters())

    loss, _, th = tr.coconut_forward(hf, *args)
    g = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    dloss, _, dth = tr.coconut_forward(hf, *args, detach_feedback=True)
    dg = dict(zip(params, torch.autograd.grad(dloss, list(params.values()))))

    # identical forward values
    assert abs(loss.item() - dloss.item()) <= 1e-12 * abs(loss.item())
    for t, d in zip(th, dth):
        for v, w in zip(t, d):
            assert np.abs(v - w).max() <= 1e-12
    # non-zero gradients everywhere that matters
    for name in ("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.weight"):
        assert float(g[name].abs().max()) > 1e-4
    # detaching the feedback changes the gradient noticeably
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight", "transformer.ln_f.weight"):
        diff = float((g[name] - dg[name]).abs().max())
        assert diff > 1e-3 * float(g[name].abs().max()), name

    # the detached variant is itself consistent: it equals the naive re-enactment
    # with detached feedback
    nloss, _, _ = naive_forward(hf, b, detach=True)
    ng = torch.autograd.grad(nloss, list(params.values()))
    for (name, _), c in zip(params.items(), ng):
        assert float((dg[name] - c).abs().max()) <= 1e-9 * max(float(c.abs().max()), 1e-3)


def test_float64_vs_float32():
    hf32 = make_model(dtype=torch.float32)
    hf64 = copy.deepcopy(hf32).double()
    b = mixed_batch(seed=2)
    args = (b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT)
    l32, lg32, t32 = tr.coconut_forward(hf32, *args)
    l64, lg64, t64 = tr.coconut_forward(hf64, *args)
    assert lg64.dtype == torch.float64
    assert abs(l32.item() - l64.item()) <= 1e-5 * abs(l64.item())
    assert rel(lg32, lg64) <= 1e-5
    for a, c in zip(t32, t64):
        assert len(a) == len(c)
        for v, w in zip(a, c):
            assert np.abs(v.astype(np.float64) - w).max() <= 1e-5 * np.abs(w).max()


def test_unaligned_batch_is_rejected():
    hf = make_model()
    ids = torch.tensor([[1, 2, BOT, LAT, EOT, 5], [1, BOT, LAT, EOT, 5, 6]])
    with pytest.raises(ValueError):
        tr.coconut_forward(hf, ids, None, None, None, LAT)


# ------------------------------------------------------------------------ collator


def test_collate_hand_made_batch():
    P = 50256
    L = 50259
    exs = [
        {"input_ids": [5, 6, 7, 1, L, L, 2, 8, 9], "labels": [-100] * 7 + [8, 9]},  # first latent 4
        {"input_ids": [5, 1, L, 2, 8], "labels": [-100] * 4 + [8]},  # first latent 2 -> 2 pads
        {"input_ids": [5, 6, 8], "labels": [-100, -100, 8]},  # no latent -> not shifted
    ]
    before = copy.deepcopy(exs)
    b = tr.reference_collate(exs, L, pad_id=P)
    assert exs == before  # inputs untouched
    assert set(b) == {"input_ids", "attention_mask", "position_ids", "labels"}
    for v in b.values():
        assert v.dtype == torch.long
    assert b["input_ids"].tolist() == [
        [5, 6, 7, 1, L, L, 2, 8, 9],
        [P, P, 5, 1, L, 2, 8, P, P],
        [5, 6, 8, P, P, P, P, P, P],
    ]
    assert b["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0, 0],
    ]
    assert b["position_ids"].tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7, 8],
        [0, 0, 0, 1, 2, 3, 4, 0, 0],
        [0, 1, 2, 0, 0, 0, 0, 0, 0],
    ]
    X = -100
    assert b["labels"].tolist() == [
        [X, X, X, X, X, X, X, 8, 9],
        [X, X, X, X, X, X, 8, X, X],
        [X, X, 8, X, X, X, X, X, X],
    ]


def test_collate_without_latents_keeps_given_position_ids():
    exs = [
        {"input_ids": [3, 4, 5], "labels": [-100, 4, 5], "position_ids": [0, 1, 2]},
        {"input_ids": [7], "labels": [7]},
    ]
    b = tr.reference_collate(exs, 99, pad_id=0)
    assert b["input_ids"].tolist() == [[3, 4, 5], [7, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]
    assert b["labels"].tolist() == [[-100, 4, 5], [7, -100, -100]]
    # prompts without labels (generation batches)
    b2 = tr.reference_collate([{"input_ids": [1, 99, 2]}, {"input_ids": [1, 1, 1, 99]}], 99, pad_id=0)
    assert "labels" not in b2
    assert b2["input_ids"].tolist() == [[0, 0, 1, 99, 2], [1, 1, 1, 99, 0]]
    assert b2["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert b2["position_ids"].tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 0]]


def test_left_padding_does_not_change_real_positions():
    """An example's loss/logits/thoughts do not depend on the batch it is in."""
    hf = make_model(dtype=torch.float64)
    rng = np.random.default_rng(11)
    exs = [make_example(rng, 7, 2, 3), make_example(rng, 3, 2, 6)]
    b = tr.reference_collate(exs, LAT, pad_id=EOS)
    _, logits, th = tr.coconut_forward(hf, b["input_ids"], b["attention_mask"], b["position_ids"], b["labels"], LAT)
    s = tr.reference_collate(exs[1:], LAT, pad_id=EOS)
    _, slogits, sth = tr.coconut_forward(hf, s["input_ids"], s["attention_mask"], s["position_ids"], s["labels"], LAT)
    n = s["input_ids"].shape[1]
    off = int((b["attention_mask"][1] == 0).nonzero().max()) + 1  # number of left pads
    assert off == 4
    assert rel(logits[1, off:off + n], slogits[0]) <= 1e-10
    for v, w in zip(th[1], sth[0]):
        assert np.abs(v - w).max() <= 1e-10


# ---------------------------------------------------------------------- generation


def greedy_plain(hf, prompt, max_new, eos):
    """Independent greedy loop on token ids (first token kept even if eos)."""
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for i in range(max_new):
            logits = hf(input_ids=torch.tensor([ids])).logits
            tok = int(logits[0, -1].argmax())
            if tok == eos and i > 0:
                break
            out.append(tok)
            ids.append(tok)
    return out


def test_generate_mode_none_equals_plain_greedy():
    hf = make_model(seed=4)
    prompt = [10, 20, 30, 40, 50, BOT, EOT]
    free = greedy_plain(hf, prompt, 12, eos=-1)
    assert len(free) == 12
    got = tr.reference_generate(hf, prompt, LAT, 12, eos_id=-1, mode="none")
    assert got == free
    # same with the default mode: the prompt has no latents
    assert tr.reference_generate(hf, prompt, LAT, 12, eos_id=-1) == free
    # eos stops decoding and is not included
    eos = free[4]
    k = free.index(eos, 1) if eos in free[1:] else None
    got = tr.reference_generate(hf, prompt, LAT, 12, eos_id=eos, mode="none")
    assert got == greedy_plain(hf, prompt, 12, eos)
    assert got == free[:k] and eos not in got[1:]
    # the first token is kept even when it is eos, and decoding goes on
    got = tr.reference_generate(hf, prompt, LAT, 6, eos_id=free[0], mode="none")
    assert got[0] == free[0] and got == greedy_plain(hf, prompt, 6, free[0])
    assert len(tr.reference_generate(hf, prompt, LAT, 1, eos_id=-1)) == 1


def test_generate_with_latents_matches_cached_greedy_on_naive_thoughts():
    hf = make_model(seed=6)
    prompt = [11, 22, 33, 44, BOT, LAT, LAT, LAT, EOT]
    got = tr.reference_generate(hf, prompt, LAT, 10, eos_id=-1)
    assert len(got) == 10 and all(0 <= t < VOCAB for t in got)

    # independent: naive thoughts, then an incremental KV-cache greedy loop
    ids = torch.tensor([prompt])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "position_ids": torch.arange(len(prompt)).unsqueeze(0),
             "labels": torch.full_like(ids, -100)}
    with torch.no_grad():
        # reproduce the final embeddings of the naive re-enactment
        emb = hf.transformer.wte(ids)
        for j in range(3):
            col = 5 + j
            h = hf.transformer(inputs_embeds=emb[:, :col]).last_hidden_state
            emb = torch.cat([emb[:, :col], h[:, -1:], emb[:, col + 1:]], dim=1)
        _, nlogits, _ = naive_forward(hf, batch)
        out = hf(inputs_embeds=emb, use_cache=True)
        assert rel(out.logits, nlogits) <= 1e-5
        cache, toks = out.past_key_values, []
        tok = int(out.logits[0, -1].argmax())
        for i in range(10):
            toks.append(tok)
            pos = torch.tensor([[len(prompt) + i]])
            o = hf(inputs_embeds=hf.transformer.wte(torch.tensor([[tok]])), past_key_values=cache,
                   position_ids=pos, use_cache=True)
            cache, tok = o.past_key_values, int(o.logits[0, -1].argmax())
    assert got == toks
    # the thoughts matter: pause mode decodes differently
    assert tr.reference_generate(hf, prompt, LAT, 10, eos_id=-1, mode="pause") != got
