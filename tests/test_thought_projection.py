"""The thought projection (CODI's Linear, GELU, Linear, LayerNorm on a continuous
thought's fed-back hidden state) in the C core against the PyTorch re-enactment
(coconut/reference/torch_codi.py): the loss and every parameter gradient, the
projection's included, with 0, 1 and 3 thoughts, left and right padding, 1 and 2
threads; the vectors fed; decoding; the checkpoint round trip; what is refused; every
allocation failing cleanly.

Tolerances (fp32 core against the fp32 reference): the loss within 1e-5 relative, every
gradient within 1e-4 of its largest, fed vectors and logits within 1e-4."""
import json
import os

import numpy as np
import pytest
import torch
import transformers

import coconut
from coconut.reference import torch_codi
from hf_bridge import hf_twin
from test_core_errors import fail_each_allocation
from test_generate import prompts_with
from test_hidden_loss import counts_and_threads
from thought_mode_checks import threads as num_threads
from test_thoughts import EOS, LAT, SPEC, V, assert_grads_close, batch_with

H = 20


def projected_model(seed=0, n_layer=2, n_head=3, n_embd=48, hidden=H):
    cfg = coconut.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=V, n_positions=64,
                             dropout=0.0, thought_projection=hidden)
    model = coconut.GPT2(cfg, seed=seed)
    # larger weights than GPT-2's init (as test_thoughts.model_for_thoughts), gains near 1
    rng = np.random.default_rng(seed)
    for name, view in model.params.items():
        gain = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "ln.weight"))
        view[...] = rng.normal(0, 0.15 if view.ndim == 2 else 0.1, view.shape).astype(np.float32) + gain
    return model


def reference(model, batch):
    hf, prj = hf_twin(model), torch_codi.projection_twin(model)
    ids, mask, pos, labels = batch
    loss, _, _ = torch_codi.codi_forward(hf, prj, ids, mask, pos, labels, LAT)
    hf.zero_grad()
    prj.zero_grad()
    loss.backward()
    grads = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    grads.update({"thought_projection." + n: np.zeros(tuple(p.shape)) if p.grad is None else p.grad.double().numpy()
                  for n, p in prj.named_parameters()})   # no thought: no gradient
    return loss.item(), grads


@counts_and_threads
def test_loss_and_every_gradient_equal_reference(counts, threads):
    model = projected_model(seed=len(counts))
    batch = batch_with(counts, seed=len(counts) + 2)
    ids, mask, pos, labels = batch
    ref_loss, ref_grads = reference(model, batch)
    with num_threads(threads):
        model.zero_grad()
        loss = model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC)
    grads = {k: g.astype(np.float64) for k, g in model.grads.items()}
    assert set(grads) == set(ref_grads)
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
    assert_grads_close(grads, ref_grads)
    if max(counts):
        assert np.abs(grads["thought_projection.fc1.weight"]).max() > 0


def test_fed_vectors_are_the_projection_of_the_hidden_state():
    model = projected_model(seed=3)
    ids, mask, pos, _ = batch_with([3, 1], seed=1)
    hf, prj = hf_twin(model), torch_codi.projection_twin(model)
    with torch.no_grad():
        _, want_logits, _ = torch_codi.codi_forward(hf, prj, ids, mask, pos, None, LAT)
    logits, fed = model.forward(ids, mask, pos, thoughts=SPEC, return_thoughts=True)
    real = mask.astype(bool)   # logits at pads carry no meaning
    np.testing.assert_allclose(logits[real], want_logits.numpy()[real], atol=1e-4)
    plain = coconut.GPT2(coconut.GPT2Config(**{**model.config.__dict__, "thought_projection": 0}), init=False)
    for name, view in plain.params.items():
        view[...] = model.params[name]
    _, unprojected = plain.forward(ids, mask, pos, thoughts=SPEC, return_thoughts=True)
    assert not np.allclose(fed[0], unprojected[0], atol=1e-2)
    # each fed vector is LayerNorm'd: zero mean over channels before the gain and bias
    ln_w, ln_b = model.params["thought_projection.ln.weight"], model.params["thought_projection.ln.bias"]
    np.testing.assert_allclose(((fed[0] - ln_b) / ln_w).mean(axis=1), 0, atol=1e-4)


def test_decoding_feeds_the_projection():
    model = projected_model(seed=4)
    hf, prj = hf_twin(model), torch_codi.projection_twin(model)
    for prompt in prompts_with([0, 2, 3], seed=2):
        got = model.generate([prompt], max_new_tokens=4, eos_id=EOS, thoughts=SPEC)[0]
        seq = list(prompt)
        want = []
        with torch.no_grad():
            for step in range(4):
                ids = np.array([seq])
                _, logits, _ = torch_codi.codi_forward(hf, prj, ids, np.ones_like(ids), np.arange(len(seq))[None],
                                                       None, LAT)
                tok = int(logits[0, -1].argmax())
                if step > 0 and tok == EOS:
                    break
                want.append(tok)
                seq.append(tok)
        assert got == want


def test_checkpoint_round_trip(tmp_path):
    model = projected_model(seed=5)
    model.save_pretrained(str(tmp_path))
    with open(os.path.join(tmp_path, "config.json")) as f:
        assert json.load(f)["thought_projection"] == H
    back = coconut.GPT2.from_pretrained(str(tmp_path))
    assert back.config.thought_projection == H and back.params.keys() == model.params.keys()
    assert np.array_equal(back.param_block, model.param_block)
    # transformers loads the directory as a GPT-2 (the projection's tensors left aside)
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    ids = np.array([[1, 5, 9, 3]])
    with torch.no_grad():
        want = hf(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(model.forward(ids, thoughts="none"), want, atol=1e-4)


def test_a_plain_checkpoint_loads_with_or_without_a_fresh_projection(tmp_path):
    plain = projected_model(seed=6, hidden=0)
    assert not any(k.startswith("thought_projection.") for k in plain.params)
    plain.save_pretrained(str(tmp_path))
    with open(os.path.join(tmp_path, "config.json")) as f:
        assert "thought_projection" not in json.load(f)
    assert coconut.GPT2.from_pretrained(str(tmp_path)).config.thought_projection == 0
    grown = coconut.GPT2.from_pretrained(str(tmp_path), seed=1, thought_projection=H)
    assert grown.config.thought_projection == H
    for name, view in plain.params.items():
        assert np.array_equal(grown.params[name], view)
    w = grown.params["thought_projection.fc1.weight"]
    assert w.shape == (H, 48) and 0 < np.abs(w).max() <= 1 / np.sqrt(48)
    assert np.all(grown.params["thought_projection.ln.weight"] == 1)
    grown.save_pretrained(str(tmp_path / "grown"))
    with pytest.raises(ValueError, match="width"):
        coconut.GPT2.from_pretrained(str(tmp_path / "grown"), thought_projection=H + 1)


def test_refused_where_it_does_not_apply():
    model = projected_model(seed=7)
    ids, mask, pos, labels = batch_with([2, 1], seed=3)
    for mode in ("soft", "jacobi"):
        with pytest.raises(ValueError, match="thought_projection"):
            model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC.with_mode(mode))
    model.bf16 = True
    with pytest.raises(ValueError, match="bf16: the thought projection"):
        model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC)
    model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC.with_mode("pause"))  # nothing fed back: runs
    with pytest.raises(ValueError, match="thought_projection"):
        coconut.GPT2Config(thought_projection=-1)


def test_out_of_memory_with_the_projection_and_hidden_cells():
    """The projected thoughts' blocks fail cleanly (loss, forward, decoding), and so does
    a loss with hidden cells (their arrays are NumPy's: no new core allocation)."""
    batch = batch_with([0, 2, 3])
    ids, mask, pos, labels = batch
    cells = np.array([[0, 3], [2, 5]])

    def loss(model):
        model.zero_grad()
        out = model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells,
                                   hidden_grad=np.full((2, 3, 48), 0.01, np.float32))
        return out, model.grad_block.copy()
    assert fail_each_allocation(projected_model, loss) >= 9
    assert fail_each_allocation(projected_model, lambda m: m.forward(ids, mask, pos, thoughts=SPEC,
                                                                     return_thoughts=True)) >= 5
    prompts = prompts_with([0, 2, 5], seed=1)
    assert fail_each_allocation(projected_model, lambda m: m.generate(prompts, max_new_tokens=6, eos_id=EOS,
                                                                      thoughts=SPEC)) >= 9
