"""The C core against transformers' GPT2LMHeadModel on torch CPU: logits, loss,
gradients of every parameter, and AdamW steps against torch.optim.AdamW."""
import numpy as np
import pytest
import torch

import coconut
from hf_bridge import hf_twin, padded_batch, small_model, torch_loss_and_grads

SHAPES = [dict(n_layer=2, n_head=3, n_embd=48, vocab_size=97),
          dict(n_layer=3, n_head=2, n_embd=20, vocab_size=61),
          dict(n_layer=1, n_head=4, n_embd=32, vocab_size=130)]


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_match(shape):
    model = small_model(**shape)
    hf = hf_twin(model)
    ids, mask, pos, _ = padded_batch(V=shape["vocab_size"])
    ours = model.forward(ids, mask, pos)
    with torch.no_grad():
        ref = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                 position_ids=torch.from_numpy(pos)).logits.numpy()
    real = mask.astype(bool)  # logits of padding positions carry no meaning
    assert np.abs(ours[real] - ref[real]).max() <= 1e-4


@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_every_gradient_match(shape):
    model = small_model(**shape)
    hf = hf_twin(model)
    ids, mask, pos, labels = padded_batch(V=shape["vocab_size"])
    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos)
    ref_loss, _, ref_grads = torch_loss_and_grads(hf, ids, mask, pos, labels)
    assert abs(loss - ref_loss) / abs(ref_loss) <= 1e-5
    ref_grads["transformer.wte.weight"] = ref_grads.pop("transformer.wte.weight")  # tied: holds both uses
    for name, g in model.grads.items():
        r = ref_grads[name]
        scale = np.abs(r).max()
        assert scale > 0, name
        assert np.abs(g - r).max() <= 1e-4 * scale, (name, np.abs(g - r).max(), scale)


def test_gradients_accumulate_until_zero_grad():
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    model.zero_grad()
    model.loss_and_grad(ids, labels, mask, pos)
    once = model.grad_block.copy()
    model.loss_and_grad(ids, labels, mask, pos)
    np.testing.assert_allclose(model.grad_block, 2 * once, rtol=1e-5, atol=1e-7)
    model.zero_grad()
    assert not model.grad_block.any()


def test_grad_scale_scales_gradients():
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    model.zero_grad()
    model.loss_and_grad(ids, labels, mask, pos)
    once = model.grad_block.copy()
    model.zero_grad()
    model.loss_and_grad(ids, labels, mask, pos, grad_scale=0.25)
    np.testing.assert_allclose(model.grad_block, 0.25 * once, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("decay_2d_only, warmup", [(False, 0), (True, 0), (False, 3)])
def test_adamw_matches_torch(decay_2d_only, warmup):
    """warmup = 3: steps 1, 2, 3, ... use lr * 1/3, 2/3, 1, 1, ... (torch: LambdaLR with
    the same factor), weight decay scaled with it."""
    model = small_model()
    hf = hf_twin(model)
    ids, mask, pos, labels = padded_batch()
    opt = coconut.AdamW(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                        decay_2d_only=decay_2d_only, warmup_steps=warmup)
    params = dict(hf.named_parameters())
    if decay_2d_only:
        groups = [{"params": [p for p in params.values() if p.ndim >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params.values() if p.ndim < 2], "weight_decay": 0.0}]
    else:
        groups = [{"params": list(params.values()), "weight_decay": 0.1}]
    ref_opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda t: min(1.0, (t + 1) / warmup) if warmup else 1.0)
    for _ in range(5):
        model.zero_grad()
        model.loss_and_grad(ids, labels, mask, pos)
        opt.step()
        ref_opt.zero_grad()
        torch_loss_and_grads(hf, ids, mask, pos, labels)
        ref_opt.step()
        sched.step()
    for name, view in model.params.items():
        ref = params[name].detach().numpy()
        assert np.abs(view - ref).max() <= 1e-5, name


def test_adamw_reset_restarts_bias_correction():
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    model.zero_grad()
    model.loss_and_grad(ids, labels, mask, pos)
    start = model.param_block.copy()
    opt = coconut.AdamW(model, lr=1e-2)
    opt.step()
    first = model.param_block - start
    opt.step()
    opt.reset()
    before = model.param_block.copy()
    opt.step()
    # after a reset the first step is again a full lr-sized sign step
    np.testing.assert_allclose(model.param_block - before, first, rtol=1e-3, atol=1e-6)
    assert opt.step_count == 1


def test_adamw_warmup_restarts_after_reset():
    # (parameters are not compared across a reset: its first step is lr * g / (|g| + eps),
    # whose sign follows rounding noise wherever g is near zero, in torch as here)
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    opt = coconut.AdamW(model, lr=1e-3, warmup_steps=3)
    seen = []
    for step in range(7):
        if step == 5:
            opt.reset()
        model.zero_grad()
        model.loss_and_grad(ids, labels, mask, pos)
        opt.step()
        seen.append(opt.current_lr())
    np.testing.assert_allclose(seen, [1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 1e-3, 1e-3 / 3, 2e-3 / 3], rtol=1e-12)


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_adamw_refuses_bad_warmup(bad):
    with pytest.raises(ValueError, match="warmup_steps"):
        coconut.AdamW(small_model(), warmup_steps=bad)
