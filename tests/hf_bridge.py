"""Helpers shared by the tests that compare the C core with `transformers` on torch:
the same weights in both, and random batches with left/right padding."""
from __future__ import annotations

import numpy as np
import torch
import transformers

import coconut


def hf_twin(model: coconut.GPT2, dtype=torch.float32) -> transformers.GPT2LMHeadModel:
    """A transformers GPT2LMHeadModel holding exactly our weights (eager attention, eval)."""
    cfg = transformers.GPT2Config(**{k: v for k, v in model.config.to_hf_dict().items()
                                     if k not in ("architectures", "model_type", "torch_dtype")})
    cfg.resid_pdrop = cfg.embd_pdrop = cfg.attn_pdrop = 0.0
    cfg.bos_token_id = cfg.eos_token_id = cfg.pad_token_id = model.config.vocab_size - 1
    hf = transformers.GPT2LMHeadModel(cfg)
    state = {k: torch.from_numpy(v.copy()) for k, v in model.params.items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(m.endswith("attn.bias") or m.endswith("masked_bias") or m == "lm_head.weight" for m in missing), missing
    hf.tie_weights()
    return hf.to(dtype).eval()


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


def torch_loss_and_grads(hf, ids, mask, pos, labels):
    hf.zero_grad()
    out = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
             position_ids=torch.from_numpy(pos), labels=torch.from_numpy(labels))
    out.loss.backward()
    grads = {n: p.grad.detach().double().numpy() for n, p in hf.named_parameters() if p.grad is not None}
    return out.loss.item(), out.logits.detach(), grads
