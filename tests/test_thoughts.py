"""Continuous thoughts in the C core against the PyTorch re-enactment of the reference
Coconut algorithm (coconut/reference/torch_coconut.py): loss, every parameter gradient, the fed-back
vectors, the pass splitting, pause mode, finite differences and bad thought layouts."""
import numpy as np
import pytest
import torch

import coconut
from coconut import ThoughtSpec
from coconut.reference import torch_coconut as tr
from hf_bridge import hf_twin

V = 100
EOS, BOT, EOT, LAT = 96, 97, 98, 99
THOUGHTS = dict(latent_id=LAT, bot_id=BOT, eot_id=EOT)   # the core's own keywords
SPEC = ThoughtSpec("continuous", **THOUGHTS)


def model_for_thoughts(seed=0, n_layer=2, n_head=3, n_embd=48):
    cfg = coconut.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=V, n_positions=64,
                             dropout=0.0)
    model = coconut.GPT2(cfg, seed=seed)
    # larger weights than GPT-2's init: attention far from uniform, thoughts matter
    rng = np.random.default_rng(seed)
    for view in model.params.values():
        view[...] = rng.normal(0, 0.15 if view.ndim == 2 else 0.1, view.shape).astype(np.float32) + \
            (1.0 if view.ndim == 1 and view.size == n_embd else 0.0)
    return model


def example(rng, q_len, k, tail_len):
    q = rng.integers(0, 96, size=q_len).tolist()
    tail = rng.integers(0, 96, size=tail_len).tolist() + [EOS]
    return {"input_ids": q + [BOT] + [LAT] * k + [EOT] + tail, "labels": [-100] * (q_len + k + 2) + tail}


def batch_with(counts, seed=0):
    rng = np.random.default_rng(seed)
    exs = [example(rng, int(rng.integers(2, 7)), k, int(rng.integers(2, 8))) for k in counts]
    b = tr.reference_collate(exs, LAT, pad_id=EOS)
    return tuple(b[k].numpy() for k in ("input_ids", "attention_mask", "position_ids", "labels"))


def reference(model, batch, dtype=torch.float32, detach=False):
    hf = hf_twin(model, dtype)
    ids, mask, pos, labels = (torch.from_numpy(x) for x in batch)
    loss, _, thoughts = tr.coconut_forward(hf, ids, mask, pos, labels, LAT, detach_feedback=detach)
    hf.zero_grad()
    loss.backward()
    grads = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    return loss.item(), grads, thoughts


def ours(model, batch, thoughts="continuous"):
    ids, mask, pos, labels = batch
    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC.with_mode(thoughts))
    return loss, {n: g.astype(np.float64) for n, g in model.grads.items()}


def assert_grads_close(got, want, tol=1e-4):
    for name, g in got.items():
        scale = np.abs(want[name]).max()
        assert np.abs(g - want[name]).max() <= tol * scale, (name, np.abs(g - want[name]).max(), scale)


COUNTS = [[0, 0], [1], [3, 3], [6, 6, 6], [0, 1, 3], [6, 2, 0, 4]]


@pytest.mark.parametrize("counts", COUNTS, ids=[str(c) for c in COUNTS])
def test_loss_and_gradients_equal_reference(counts):
    model = model_for_thoughts()
    batch = batch_with(counts, seed=len(counts))
    ref_loss, ref_grads, _ = reference(model, batch)
    loss, grads = ours(model, batch)
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
    assert_grads_close(grads, ref_grads)


def test_float64_reference_shows_fp32_error_is_rounding():
    model = model_for_thoughts(seed=3, n_layer=3, n_head=2, n_embd=32)
    batch = batch_with([6, 2, 0, 4], seed=5)
    ref_loss, ref_grads, ref_thoughts = reference(model, batch, dtype=torch.float64)
    loss, grads = ours(model, batch)
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
    assert_grads_close(grads, ref_grads)
    # the vectors fed into the thought slots, example by example
    _, vectors = model.forward(batch[0], batch[1], batch[2], thoughts=SPEC, return_thoughts=True)
    for got, want in zip(vectors, ref_thoughts):
        assert len(got) == len(want)
        if want:
            np.testing.assert_allclose(got, np.stack(want), atol=1e-4, rtol=0)


def test_gradient_flows_through_thoughts():
    model = model_for_thoughts(seed=1)
    batch = batch_with([4, 4], seed=2)
    _, full, _ = reference(model, batch)
    _, detached, _ = reference(model, batch, detach=True)
    _, grads = ours(model, batch)
    assert_grads_close(grads, full)
    # the detached reference must disagree with us clearly somewhere
    worst = max(np.abs(grads[n] - detached[n]).max() / np.abs(detached[n]).max() for n in grads)
    assert worst > 1e-2


def test_finite_difference_through_four_thoughts():
    """d loss / d (embedding of <bot>) reaches the answer only through thought 1 = h(<bot>)
    and the chain after it; compare with central differences along the gradient."""
    model = model_for_thoughts(seed=4, n_layer=2, n_head=2, n_embd=16)
    batch = batch_with([4, 4, 4], seed=7)
    _, grads = ours(model, batch)
    g = grads["transformer.wte.weight"][BOT].copy()
    assert np.linalg.norm(g) > 1e-4
    direction = (g / np.linalg.norm(g)).astype(np.float32)
    row = model.params["transformer.wte.weight"][BOT]
    base = row.copy()
    eps = 1e-2
    losses = []
    for sign in (1, -1):
        row[...] = base + sign * eps * direction
        losses.append(model.loss(batch[0], batch[3], batch[1], batch[2], thoughts=SPEC))
    row[...] = base
    fd = (losses[0] - losses[1]) / (2 * eps)
    assert abs(fd - np.linalg.norm(g)) <= 2e-3 * np.linalg.norm(g)


@pytest.mark.parametrize("splits", [[3], [5, 9], "every"])
def test_any_pass_split_gives_the_same_numbers(splits):
    """Forward of [0,a), [a,b), [b,T) with the cache equals the single range [0,T)."""
    model = model_for_thoughts(seed=2)
    ids, mask, pos, labels = batch_with([0, 0, 0], seed=3)
    if splits == "every":  # one pass per position
        splits = list(range(1, ids.shape[1]))
    core = model._core
    model.zero_grad()
    whole = core.loss(ids, mask, pos, labels)
    g_whole = model.grad_block.copy()
    model.zero_grad()
    split = core.loss(ids, mask, pos, labels, splits=splits)
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(model.grad_block, g_whole, atol=1e-6 * np.abs(g_whole).max())
    logits_whole = core.forward(ids, mask, pos)[0]
    logits_split = core.forward(ids, mask, pos, splits=splits)[0]
    np.testing.assert_allclose(logits_split, logits_whole, atol=1e-5)


@pytest.mark.parametrize("dropout, bf16, n_layer", [(0.0, False, 2), (0.1, False, 2), (0.1, True, 2),
                                                    (0.0, False, 1), (0.1, False, 3)])
def test_packed_rows_give_the_numbers_of_the_full_grid(dropout, bf16, n_layer):
    """The loss runs only the cells something reads (packed=True, the default: no pads,
    and the last layer's attention, MLP and ln_f only where a label or a thought reads
    the output); the full (B, T) grid gives the same loss and gradients. The batch has
    left and right pads, thoughts in every pass, and a label whose logits come from a pad."""
    model = model_for_thoughts(seed=4, n_layer=n_layer)
    ids, mask, pos, labels = batch_with([6, 2, 0, 4], seed=6)
    first = int(np.argmax(mask[1]))
    assert first > 0 and labels[1, first] == -100
    labels[1, first] = ids[1, first]  # predicted from the pad before it
    assert_packed_is_the_full_grid(model, (ids, mask, pos, labels), 2e-3 if bf16 else 1e-6,
                                   1e-2 if bf16 else 1e-6, mode=2, dropout=dropout, seed=11, bf16=bf16, **THOUGHTS)


def assert_packed_is_the_full_grid(model, batch, loss_tol, grad_tol, **args):
    """The core's loss and gradients (keywords args) with packed rows and on the full
    grid: the same count, the loss within loss_tol relative, the gradients within
    grad_tol of the largest."""
    results = {}
    for packed in (True, False):
        model.zero_grad()
        loss = model._core.loss(*batch, packed=packed, **args)
        results[packed] = loss, model.grad_block.copy()
    (loss_p, g_p), (loss_f, g_f) = results[True], results[False]
    assert loss_p[1] == loss_f[1]
    assert abs(loss_p[0] - loss_f[0]) <= loss_tol * loss_f[0]
    np.testing.assert_allclose(g_p, g_f, atol=grad_tol * np.abs(g_f).max())


def test_pause_mode_is_one_ordinary_forward():
    model = model_for_thoughts(seed=5)
    batch = batch_with([0, 2, 3], seed=1)
    hf = hf_twin(model)
    ids, mask, pos, labels = (torch.from_numpy(x) for x in batch)
    want = hf(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels).loss.item()
    pause, _ = ours(model, batch, thoughts="pause")
    none, _ = ours(model, batch, thoughts="none")
    cont, _ = ours(model, batch, thoughts="continuous")
    assert abs(pause - want) <= 1e-5 * want
    assert pause == none
    assert abs(cont - pause) > 1e-3


def test_unaligned_thoughts_are_computed_exactly():
    """The core does not need the reference's alignment: thoughts in different columns
    give the same loss as each example alone."""
    model = model_for_thoughts(seed=6)
    rng = np.random.default_rng(0)
    exs = [example(rng, 3, 2, 4), example(rng, 6, 3, 2)]
    alone = []
    for ex in exs:
        ids = np.array([ex["input_ids"]])
        lab = np.array([ex["labels"]])
        model.zero_grad()
        alone.append(model.loss_and_count(ids, lab, backward=False, thoughts=SPEC))
    T = max(len(e["input_ids"]) for e in exs)
    ids = np.full((2, T), EOS)
    lab = np.full((2, T), -100)
    mask = np.zeros((2, T), np.int64)
    for i, e in enumerate(exs):  # right padding only: the thoughts stay unaligned
        n = len(e["input_ids"])
        ids[i, :n], lab[i, :n], mask[i, :n] = e["input_ids"], e["labels"], 1
    both = model.loss(ids, lab, mask, thoughts=SPEC)
    want = sum(l * n for l, n in alone) / sum(n for _, n in alone)
    assert abs(both - want) <= 1e-5 * want


@pytest.mark.parametrize("ids, message", [
    ([LAT, EOT, 5, 6], "position 0"),
    ([5, LAT, EOT, 6], "outside a <bot>"),
    ([5, BOT, LAT, LAT, 6], "not closed by <eot>"),
    ([5, BOT, LAT, LAT], "not closed by <eot>"),
])
def test_bad_thought_layouts_raise(ids, message):
    model = model_for_thoughts()
    with pytest.raises(ValueError, match=message):
        model.loss_and_grad(np.array([ids]), np.array([ids]), thoughts=SPEC)


def test_continuous_mode_needs_the_thought_ids():
    model = model_for_thoughts()
    with pytest.raises(ValueError, match="bot_id"):
        model.loss_and_grad(np.array([[1, 2, 3]]), np.array([[1, 2, 3]]), thoughts="continuous")
