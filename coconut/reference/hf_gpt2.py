"""A `transformers` GPT2LMHeadModel holding exactly a coconut.GPT2's weights, and its
loss and gradients: the yardstick for the core's model (tests/test_model_vs_transformers.py)
and its speed (benchmarks/)."""
from __future__ import annotations

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
    state = {k: torch.from_numpy(v.copy()) for k, v in model.params.items()
             if not k.startswith("thought_projection.")}   # not GPT-2's: see torch_codi.projection_twin
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(m.endswith("attn.bias") or m.endswith("masked_bias") or m == "lm_head.weight" for m in missing), missing
    hf.tie_weights()
    return hf.to(dtype).eval()


def torch_loss_and_grads(hf, ids, mask, pos, labels):
    hf.zero_grad()
    out = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
             position_ids=torch.from_numpy(pos), labels=torch.from_numpy(labels))
    out.loss.backward()
    grads = {n: p.grad.detach().double().numpy() for n, p in hf.named_parameters() if p.grad is not None}
    return out.loss.item(), out.logits.detach(), grads
