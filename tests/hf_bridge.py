"""Helpers shared by the tests that compare the C core with `transformers` on torch:
small models and random batches with left/right padding; the same weights in both
come from coconut.reference.hf_gpt2."""
from __future__ import annotations

import numpy as np
import coconut
from coconut.reference.hf_gpt2 import hf_twin, torch_loss_and_grads  # noqa: F401 (shared by the tests)


def small_model(seed=0, n_layer=2, n_head=3, n_embd=48, vocab_size=97, n_positions=64) -> coconut.GPT2:
    cfg = coconut.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
                             n_positions=n_positions, dropout=0.0)
    model = coconut.GPT2(cfg, seed=seed)
    # non-trivial LayerNorms and biases, so that their gradients are exercised
    rng = np.random.default_rng(seed + 100)
    for name, view in model.params.items():
        if view.ndim == 1:
            view += rng.normal(0, 0.1, view.shape).astype(np.float32)
    return model


def padded_batch(seed=0, B=3, T=17, V=97):
    """Row 0 full, row 1 left-padded by 4 (positions restart after the pads), row 2
    right-padded by 5; labels -100 on pads and on a few question tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    mask = np.ones((B, T), np.int64)
    pos = np.tile(np.arange(T), (B, 1))
    mask[1, :4] = 0
    pos[1, :4] = 0
    pos[1, 4:] = np.arange(T - 4)
    mask[2, T - 5:] = 0
    labels = ids.copy()
    labels[mask == 0] = -100
    labels[:, :3] = -100
    return ids, mask, pos, labels
