"""Jacobi thoughts (PCCoT) in the C core beyond the comparison with the re-enactment
(tests/test_thought_modes.py): with as many iterations as slots, Coconut's
sequential continuous thoughts; the fixed point; unaligned batches; the row plan of the
unrolled batch; generation against the re-enactment's decoding; the spec's checks."""
import numpy as np
import pytest

from coconut import ThoughtSpec, _C
from coconut.reference import torch_thought_modes as tm
from hf_bridge import hf_twin
from test_generate import prompts_with
from test_thoughts import EOS, LAT, THOUGHTS, assert_grads_close, batch_with, example, model_for_thoughts
from thought_mode_checks import assert_same_run, core_run, reference_run

MODES = _C.THOUGHT_MODES


def jacobi(iterations=3):
    return ThoughtSpec("jacobi", iterations=iterations, **THOUGHTS)


@pytest.mark.parametrize("counts", [[1], [3, 3], [4, 4], [0, 1, 3], [6, 6, 6], [6, 2, 0, 4]], ids=str)
def test_as_many_iterations_as_slots_is_coconut(counts):
    """Slot j's input is exact from iteration j on, so with T = the most slots the last
    iteration's inputs are Coconut's sequential thoughts. The core sums the same terms
    in another grouping (the gradients of every copy; attention over a whole slot block,
    a BLAS product once more than 4 queries share an example's pass, where a continuous
    pass has one): within 1e-6 (loss), 2e-6 of each tensor's largest (gradients) and
    1e-5 (thoughts); observed 2e-8, 4e-7 and 1.5e-6."""
    model = model_for_thoughts(seed=3)
    ids, mask, pos, labels = batch = batch_with(counts, seed=len(counts))
    want = core_run(model, batch, ThoughtSpec("continuous", **THOUGHTS))
    got = core_run(model, batch, jacobi(max(counts)))
    assert abs(got[0] - want[0]) <= 1e-6 * want[0]
    assert_grads_close(got[1], want[1], tol=2e-6)
    for g, w in zip(got[2], want[2]):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)
    if max(counts) > 4:
        return
    # where the passes group the same sums, the numbers are the same bits: the thoughts
    # (each slot's attention is a handful of queries in both), and the loss once the
    # continuous schedule's last pass is split where the Jacobi block ends
    for g, w in zip(got[2], want[2]):
        assert np.array_equal(g, w)
    end = int(np.argmax((ids == LAT).any(axis=0))) + max(counts)
    split, _ = model._core.loss(ids, mask, pos, labels, mode=MODES["continuous"], splits=[end], backward=False,
                                **THOUGHTS)
    assert model.loss(ids, labels, mask, pos, thoughts=jacobi(max(counts))) == split


def test_iterations_past_the_slots_change_nothing():
    """From T = the most slots on every slot input is at the fixed point: more
    iterations repeat the same computation, bit for bit."""
    model = model_for_thoughts(seed=5)
    ids, mask, pos, labels = batch_with([3, 1, 0], seed=2)
    base = model.forward(ids, mask, pos, thoughts=jacobi(3), return_thoughts=True)
    more = model.forward(ids, mask, pos, thoughts=jacobi(5), return_thoughts=True)
    assert np.array_equal(base[0], more[0])
    assert all(np.array_equal(a, b) for a, b in zip(base[1], more[1]))
    fewer = model.forward(ids, mask, pos, thoughts=jacobi(2), return_thoughts=True)
    assert not np.array_equal(base[1][0], fewer[1][0])  # 3 slots need 3 iterations


def test_unaligned_slots_are_computed_exactly():
    """The Jacobi block spans every example's slots; an example whose slots start later
    or end earlier recomputes its own tokens in each copy and reads its <bot> from the
    previous copy: the loss is each example's alone."""
    model = model_for_thoughts(seed=6)
    rng = np.random.default_rng(0)
    exs = [example(rng, 3, 2, 4), example(rng, 6, 3, 2)]
    alone = []
    for ex in exs:
        alone.append(model.loss_and_count(np.array([ex["input_ids"]]), np.array([ex["labels"]]), backward=False,
                                          thoughts=jacobi(2)))
    T = max(len(e["input_ids"]) for e in exs)
    ids, lab, mask = np.full((2, T), EOS), np.full((2, T), -100), np.zeros((2, T), np.int64)
    for i, e in enumerate(exs):  # right padding only: the slots stay unaligned
        n = len(e["input_ids"])
        ids[i, :n], lab[i, :n], mask[i, :n] = e["input_ids"], e["labels"], 1
    both = model.loss(ids, lab, mask, thoughts=jacobi(2))
    want = sum(l * n for l, n in alone) / sum(n for _, n in alone)
    assert abs(both - want) <= 1e-5 * want
    # and the reference agrees on the unaligned batch
    pos = np.where(mask == 1, np.arange(T), 0)
    assert_same_run(core_run(model, (ids, mask, pos, lab), jacobi(2)),
                    reference_run(model, (ids, mask, pos, lab), tm.jacobi_forward, iterations=2))


def test_row_plan_runs_one_pass_per_copy():
    ids, mask, _, labels = batch_with([2, 3, 0], seed=4)
    first = int(np.argmax((ids == LAT).any(axis=0)))
    T, W, n_iter = ids.shape[1], 3, 2
    plan = _C.row_plan(ids, mask, labels, mode=MODES["jacobi"], iterations=n_iter, n_layer=2, **THOUGHTS)
    Tv = T + n_iter * W
    assert plan["bounds"].tolist() == [0] + [first + k * W for k in range(n_iter + 2)] + [Tv]
    keys = plan["keys"]
    # a copy's keys: the question's and its own copy's, never an earlier copy's
    assert (keys[2] == keys[3]).all() and (keys[1] == keys[2]).all()
    assert (plan["queries"][1:4] == plan["queries"][1]).all()


@pytest.mark.parametrize("iterations", [1, 3])
@pytest.mark.parametrize("counts", [[3, 3, 3], [0, 1, 4, 6, 2]], ids=str)
def test_generation_equals_reference_decoding(counts, iterations):
    model = model_for_thoughts(seed=11)
    hf = hf_twin(model)
    prompts = prompts_with(counts, seed=len(counts))
    got = model.generate(prompts, max_new_tokens=12, eos_id=EOS, thoughts=jacobi(iterations), batch_size=2)
    for prompt, ours in zip(prompts, got):
        assert ours == tm.thought_generate(hf, prompt, LAT, 12, EOS, "jacobi", iterations=iterations)


@pytest.mark.parametrize("iterations", [0, -2])
def test_bad_iterations_raise_naming_them(iterations):
    with pytest.raises(ValueError, match="iterations"):
        jacobi(iterations)
    with pytest.raises(ValueError, match="iterations"):
        ThoughtSpec("jacobi", iterations=2.5, **THOUGHTS)
    model = model_for_thoughts()
    ids, mask, pos, labels = batch_with([1], seed=0)
    with pytest.raises(ValueError, match="iterations"):
        model._core.loss(ids, mask, pos, labels, mode=MODES["jacobi"], iterations=iterations, **THOUGHTS)


def test_jacobi_thoughts_need_the_thought_ids():
    with pytest.raises(ValueError, match="latent_id"):
        ThoughtSpec("jacobi")
    model = model_for_thoughts()
    ids, mask, pos, labels = batch_with([1], seed=0)
    with pytest.raises(ValueError, match="eot_id"):
        model._core.loss(ids, mask, pos, labels, mode=MODES["jacobi"], **{**THOUGHTS, "eot_id": 100})
