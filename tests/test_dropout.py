"""Seeded counter-based dropout: reproducible, independent of how passes split the
sequence, and the backward uses exactly the forward's masks (finite differences)."""
import numpy as np

import coconut
from hf_bridge import padded_batch


def model_with_dropout(p=0.1, seed=0):
    cfg = coconut.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=97, n_positions=32, dropout=p)
    return coconut.GPT2(cfg, seed=seed)


def test_same_seed_same_run():
    ids, mask, pos, labels = padded_batch()
    runs = []
    for _ in range(2):
        model = model_with_dropout(seed=3)
        model.zero_grad()
        losses = [model.loss_and_grad(ids, labels, mask, pos) for _ in range(3)]
        runs.append((losses, model.grad_block.copy()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    # each call draws fresh masks
    assert len(set(runs[0][0])) == 3


def test_dropout_changes_the_loss_and_eval_mode_turns_it_off():
    ids, mask, pos, labels = padded_batch()
    model = model_with_dropout(p=0.3)
    plain = model.loss(ids, labels, mask, pos)
    dropped = model.loss_and_count(ids, labels, mask, pos, backward=True)[0]
    assert abs(dropped - plain) > 1e-4
    model.eval()
    model.zero_grad()
    assert abs(model.loss_and_grad(ids, labels, mask, pos) - plain) < 1e-6


def test_masks_do_not_depend_on_pass_splits():
    ids, mask, pos, labels = padded_batch()
    model = model_with_dropout(p=0.2)
    core = model._core
    model.zero_grad()
    whole = core.loss(ids, mask, pos, labels, dropout=0.2, seed=11)
    g_whole = model.grad_block.copy()
    model.zero_grad()
    split = core.loss(ids, mask, pos, labels, dropout=0.2, seed=11, splits=[4, 9, 10])
    assert abs(split[0] - whole[0]) <= 1e-6 * whole[0]
    np.testing.assert_allclose(model.grad_block, g_whole, atol=1e-6 * np.abs(g_whole).max())


def test_backward_uses_the_forward_masks():
    """With a fixed seed the masked network is a fixed function: its gradient must match
    central differences along the gradient direction."""
    ids, mask, pos, labels = padded_batch()
    model = model_with_dropout(p=0.25, seed=1)
    core = model._core
    model.zero_grad()
    core.loss(ids, mask, pos, labels, dropout=0.25, seed=5)
    g = model.grad_block.astype(np.float64)
    direction = (g / np.linalg.norm(g)).astype(np.float32)
    base = model.param_block.copy()
    eps = 1e-3  # truncation error of central differences is ~1e-5 relative here
    vals = []
    for sign in (1, -1):
        model.param_block[...] = base + sign * eps * direction
        vals.append(core.loss(ids, mask, pos, labels, dropout=0.25, seed=5, backward=False)[0])
    model.param_block[...] = base
    fd = (vals[0] - vals[1]) / (2 * eps)
    assert abs(fd - np.linalg.norm(g)) <= 1e-3 * np.linalg.norm(g)


def test_dropout_rate():
    """In a model with no layers the position-embedding gradient of a dropped input is
    exactly zero: about p of them are, for p = 0.5 and p = 0.1."""
    for p in (0.5, 0.1):
        cfg = coconut.GPT2Config(n_layer=0, n_head=1, n_embd=64, vocab_size=8, n_positions=64, dropout=p)
        model = coconut.GPT2(cfg)
        ids = np.arange(64)[None, :] % 8
        model.zero_grad()
        model._core.loss(ids, np.ones_like(ids), np.arange(64)[None, :], ids, dropout=p, seed=9)
        g = model.grads["transformer.wpe.weight"][:63]  # the last position has no label
        assert abs(np.mean(g == 0) - p) < 0.03
