"""Soft and Jacobi thoughts in the C core against their PyTorch re-enactments
(coconut/reference/torch_thought_modes.py) on the same weights: the loss, every parameter
gradient and the vectors fed into the slots, at 0, 1 and 3 thoughts and in padded
batches, on 1 and 2 threads (fp32, dropout 0, tolerances in thought_mode_checks.py); and
the packed row plan against the full grid."""
import pytest

from coconut import ThoughtSpec, _C
from coconut.reference import torch_thought_modes as tm
from test_thoughts import THOUGHTS, assert_packed_is_the_full_grid, batch_with, model_for_thoughts
from thought_mode_checks import assert_same_run, core_run, reference_run, threads

# 0, 1 and 3 thoughts; mixed counts give left pads (first thoughts aligned) and right pads
COUNTS = [[0, 0], [1], [3, 3], [0, 1, 3], [6, 2, 0, 4]]
# mode, its re-enactment, the spec field it reads and two values of it
MODES = [("soft", tm.soft_forward, "temperature", 1.0), ("soft", tm.soft_forward, "temperature", 0.3),
         ("jacobi", tm.jacobi_forward, "iterations", 1), ("jacobi", tm.jacobi_forward, "iterations", 3)]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("mode, forward, field, value", MODES, ids=[f"{m}-{f}={v}" for m, _, f, v in MODES])
@pytest.mark.parametrize("counts", COUNTS, ids=[str(c) for c in COUNTS])
def test_loss_gradients_and_fed_vectors_equal_reference(counts, mode, forward, field, value, n_threads):
    model = model_for_thoughts(seed=len(counts))
    batch = batch_with(counts, seed=len(counts))
    with threads(n_threads):
        got = core_run(model, batch, ThoughtSpec(mode, **{field: value}, **THOUGHTS))
    assert_same_run(got, reference_run(model, batch, forward, **{field: value}))
    assert [len(f) for f in got[2]] == counts


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("mode, field, value", [("soft", "temperature", 0.5), ("jacobi", "iterations", 2)])
def test_packed_rows_give_the_numbers_of_the_full_grid(mode, field, value, dropout):
    """The loss runs only the cells something reads; a soft thought reads the position
    before it, a Jacobi slot the previous copy's: the full (B, T) grid gives the same
    loss and gradients (as tests/test_thoughts.py checks for continuous thoughts)."""
    model = model_for_thoughts(seed=4)
    batch = batch_with([6, 2, 0, 4], seed=6)
    assert_packed_is_the_full_grid(model, batch, 1e-6, 1e-6, mode=_C.THOUGHT_MODES[mode], dropout=dropout, seed=11,
                                   **{field: value}, **THOUGHTS)
