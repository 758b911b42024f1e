"""Every failure of the C core names its cause: out of memory at each of its allocations
(provoked with the core's allocation-failure hook) is a MemoryError that leaks nothing and
leaves the model computing the same numbers; an overflowing loss or logit is a
FloatingPointError (bad input, a ValueError, is tested in test_bad_input.py)."""

import numpy as np
import pytest

from coconut import _C
from hf_bridge import padded_batch, small_model
from test_generate import prompts_with
from test_thoughts import EOS, SPEC, THOUGHTS, batch_with, model_for_thoughts


def same(a, b):
    """Bitwise equality of nested results (floats, arrays, lists of ids)."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def fail_each_allocation(make_model, call):
    """Makes the core's allocation number n = 0, 1, ... fail on a fresh model until a call
    no longer reaches it. Each call either succeeds or raises MemoryError, exactly when
    the failing allocation was reached (no allocation failure is skipped over); then
    the same model repeats the undisturbed result bit for bit, and once it is gone the
    core holds no more blocks than before. Returns the number of allocation points."""
    want = call(make_model())
    for n in range(1000):
        held = _C._live_allocations()
        model = make_model()
        _C._fail_allocations_after(n)
        try:
            call(model)
            raised = False
        except MemoryError as e:
            assert str(e).startswith("out of memory computing "), str(e)
            raised = True
        finally:
            pending = _C._fail_allocations_after(-1)
        assert raised == (pending == -1), f"allocation {n}: reached {pending == -1}, raised {raised}"
        assert same(call(model), want), f"allocation {n}: the model computes other numbers after the error"
        del model
        assert _C._live_allocations() == held, f"allocation {n}: blocks leaked"
        if not raised:
            return n
    raise AssertionError("the allocation countdown never ran out")


def loss_and_grads(model, batch, thoughts="continuous", **kw):
    ids, mask, pos, labels = batch
    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC.with_mode(thoughts), **kw)
    return loss, model.grad_block.copy()


def test_out_of_memory_in_the_loss_and_its_gradient():
    batch = batch_with([0, 2, 3])
    # is_thought, bounds, layers, arena, supervised rows (3), logits chunk
    assert fail_each_allocation(model_for_thoughts, lambda m: loss_and_grads(m, batch)) >= 8
    ids, mask, pos, labels = batch

    def with_splits(model):
        return model._core.loss(ids, mask, pos, labels, mode=2, splits=[3, 5], backward=False, **THOUGHTS)
    assert fail_each_allocation(model_for_thoughts, with_splits) >= 9


def test_out_of_memory_under_bf16():
    """The bf16 weight copy and gradient scratch live in the activation arena: no new
    allocation points, and every one still fails cleanly."""
    batch = batch_with([0, 2, 3])

    def bf16_model():
        model = model_for_thoughts()
        model.bf16 = True
        return model
    assert fail_each_allocation(bf16_model, lambda m: loss_and_grads(m, batch)) >= 8
    prompts = prompts_with([0, 2, 5], seed=1)
    assert fail_each_allocation(bf16_model, lambda m: m.generate(prompts, max_new_tokens=6, eos_id=EOS,
                                                                 thoughts=SPEC)) >= 9


def test_out_of_memory_in_forward_and_generate():
    ids, mask, pos, _ = batch_with([1, 4])

    def forward(model):
        logits, thoughts = model.forward(ids, mask, pos, thoughts=SPEC, return_thoughts=True)
        return logits, thoughts
    assert fail_each_allocation(model_for_thoughts, forward) >= 4
    prompts = prompts_with([0, 2, 5], seed=1)

    def generate(model):
        return model.generate(prompts, max_new_tokens=6, eos_id=EOS, thoughts=SPEC)
    assert fail_each_allocation(model_for_thoughts, generate) >= 9


@pytest.mark.parametrize("mode", ["soft", "jacobi"])
def test_out_of_memory_with_soft_and_jacobi_thoughts(mode):
    """Their own blocks (soft: the thoughts' numbering, mixtures, probabilities and
    gradients; jacobi: the unrolled batch; both: the decoding batch's maps) fail cleanly."""
    spec = SPEC.with_mode(mode)
    batch = batch_with([0, 2, 3])
    assert fail_each_allocation(model_for_thoughts, lambda m: loss_and_grads(m, batch, thoughts=mode)) >= 9
    ids, mask, pos, _ = batch
    assert fail_each_allocation(model_for_thoughts, lambda m: m.forward(ids, mask, pos, thoughts=spec,
                                                                        return_thoughts=True)) >= 5
    prompts = prompts_with([0, 2, 5], seed=1)
    assert fail_each_allocation(model_for_thoughts, lambda m: m.generate(prompts, max_new_tokens=6, eos_id=EOS,
                                                                         thoughts=spec)) >= 9


def test_out_of_memory_message_names_the_computation():
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    _C._fail_allocations_after(3)  # after is_thought, bounds, layers: the arena
    try:
        with pytest.raises(MemoryError, match=r"out of memory computing the activations of a 3 x 17 batch"):
            model.loss_and_grad(ids, labels, mask, pos)
    finally:
        _C._fail_allocations_after(-1)
    model.loss(ids, labels, mask, pos)  # lays the arena out: later calls allocate none
    _C._fail_allocations_after(3)  # after is_thought, bounds, the packed row maps: the loss's first block
    try:
        with pytest.raises(MemoryError, match=r"out of memory computing the loss of a 3 x 17 batch"):
            model.loss(ids, labels, mask, pos)
    finally:
        _C._fail_allocations_after(-1)


def overflowing(model):
    """Weights whose logits exceed float32 (ln_f's bias times large token rows)."""
    model.params["transformer.wte.weight"][...] *= 1e4
    model.params["transformer.ln_f.bias"][...] = 1e37
    return model


def test_overflowing_logits_are_a_floating_point_error():
    batch = batch_with([0, 2, 3])
    want = loss_and_grads(model_for_thoughts(), batch)
    model = model_for_thoughts()
    saved = model.param_block.copy()
    overflowing(model)
    with pytest.raises(FloatingPointError, match=r"the loss of a 3 x \d+ batch: not finite"):
        loss_and_grads(model, batch)
    with pytest.raises(FloatingPointError, match="not finite"):
        model.loss(batch[0], batch[3], batch[1], batch[2], thoughts=SPEC)
    with pytest.raises(FloatingPointError, match=r"next-token logits .*: not finite"):
        model.generate(prompts_with([0, 2]), max_new_tokens=3, eos_id=EOS, thoughts=SPEC)
    logits = model.forward(batch[0], batch[1], batch[2], thoughts=SPEC)
    assert not np.isfinite(logits).all()  # forward hands the logits back as they are
    model.param_block[...] = saved
    assert same(loss_and_grads(model, batch), want)


def test_thought_modes_come_from_the_core():
    from coconut import thought_spec
    assert thought_spec.THOUGHT_MODES == _C.THOUGHT_MODES
    assert sorted(_C.THOUGHT_MODES) == ["continuous", "jacobi", "none", "pause", "soft"]
    assert len(set(_C.THOUGHT_MODES.values())) == 5
