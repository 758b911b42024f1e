"""A loss on hidden states (hidden_cells, hidden_grad) in the C core against the PyTorch
re-enactment (coconut/reference/torch_codi.py): the states handed back at chosen cells
and every layer, and the loss's gradient plus an injected hidden-state gradient in every
parameter, with 0, 1 and 3 continuous thoughts, left and right padding, 1 and 2
threads; CODI's distillation term (coconut/codi.py) against torch autograd; bad input.

Tolerances (fp32 core against the fp32 reference): the loss within 1e-5 relative, the
hidden states within 1e-4 of their largest, every gradient within 1e-4 of its largest."""
import numpy as np
import pytest
import torch

from coconut.codi import distillation_loss_and_grad
from coconut.reference import torch_codi
from hf_bridge import hf_twin
from thought_mode_checks import threads as num_threads
from test_thoughts import BOT, EOT, LAT, SPEC, assert_grads_close, batch_with, model_for_thoughts

COUNTS = [[0, 0], [1, 1], [3, 3], [0, 1, 3], [3, 0, 1, 2]]


def counts_and_threads(test):
    """Runs test(counts, threads) for every thought count of COUNTS on 1 and 2 threads."""
    test = pytest.mark.parametrize("counts", COUNTS, ids=[str(c) for c in COUNTS])(test)
    return pytest.mark.parametrize("threads", [1, 2])(test)


def cells_of(ids, mask):
    """Per example: the token before the answer's first (<eot>, or the last question
    token without a <bot>), <bot>, and its last real token."""
    cells = []
    for b in range(ids.shape[0]):
        real = np.nonzero(mask[b])[0]
        eot = np.nonzero(ids[b] == EOT)[0]
        bot = np.nonzero(ids[b] == BOT)[0]
        cells += [(b, int(eot[0]) if len(eot) else int(real[len(real) // 2])), (b, int(real[-1]))]
        if len(bot):
            cells.append((b, int(bot[0])))
    return np.array(cells, dtype=np.int64)


def reference(model, batch, cells, weight):
    """Loss, the hidden states at cells and the gradients of loss + sum(weight * hidden)."""
    hf = hf_twin(model)
    ids, mask, pos, labels = batch
    loss, _, hidden = torch_codi.codi_forward(hf, None, ids, mask, pos, labels, LAT, cells)
    hf.zero_grad()
    (loss + (hidden * torch.from_numpy(weight)).sum()).backward()
    grads = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    return loss.item(), hidden.detach().numpy(), grads


def weights_for(model, cells, seed):
    E, C = model.config.n_layer + 1, model.config.n_embd
    return np.random.default_rng(seed).normal(0, 0.05, (len(cells), E, C)).astype(np.float32)


@counts_and_threads
def test_hidden_states_and_injected_gradient_equal_reference(counts, threads):
    model = model_for_thoughts(seed=len(counts))
    batch = batch_with(counts, seed=len(counts) + 1)
    ids, mask, pos, labels = batch
    cells = cells_of(ids, mask)
    weight = weights_for(model, cells, seed=3)
    ref_loss, ref_hidden, ref_grads = reference(model, batch, cells, weight)
    with num_threads(threads):
        model.zero_grad()
        loss, count, hidden = model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells,
                                                   hidden_grad=weight)
        grads = {k: g.astype(np.float64) for k, g in model.grads.items()}
        states = model.hidden_states(ids, cells, mask, pos, thoughts=SPEC)
    assert count == int((labels[:, 1:] != -100).sum())
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
    assert hidden.shape == (len(cells), model.config.n_layer + 1, model.config.n_embd)
    np.testing.assert_allclose(hidden, ref_hidden, atol=1e-4 * np.abs(ref_hidden).max(), rtol=0)
    np.testing.assert_allclose(states, ref_hidden, atol=1e-4 * np.abs(ref_hidden).max(), rtol=0)
    assert_grads_close(grads, ref_grads)


def test_the_batches_have_left_and_right_padding():
    masks = [batch_with(c, seed=len(c) + 1)[1] for c in COUNTS]
    assert any((m[:, 0] == 0).any() for m in masks) and any((m[:, -1] == 0).any() for m in masks)


def test_a_callable_gets_the_states_and_gives_the_same_gradient():
    model = model_for_thoughts(seed=2, n_layer=3)
    batch = batch_with([3, 1, 0], seed=4)
    ids, mask, pos, labels = batch
    cells = cells_of(ids, mask)
    weight = weights_for(model, cells, seed=5)
    model.zero_grad()
    _, _, given = model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells, hidden_grad=weight)
    by_array = model.grad_block.copy()
    seen = []
    model.zero_grad()
    _, _, hidden = model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells,
                                        hidden_grad=lambda h: seen.append(h.copy()) or weight)
    assert np.array_equal(model.grad_block, by_array)
    assert np.array_equal(seen[0], hidden) and np.array_equal(hidden, given)


def test_cells_alone_change_nothing():
    """Asking for hidden states (no gradient) gives the same loss and gradients (to
    rounding: the cells may add rows to the products); the packed rows and the full grid
    agree with an injected gradient too."""
    model = model_for_thoughts(seed=6)
    ids, mask, pos, labels = batch_with([3, 0, 1], seed=2)
    cells = cells_of(ids, mask)
    model.zero_grad()
    plain = model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC)
    g_plain = model.grad_block.copy()
    model.zero_grad()
    loss, _, _ = model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells)
    assert abs(loss - plain) <= 1e-6 * plain
    np.testing.assert_allclose(model.grad_block, g_plain, atol=1e-6 * np.abs(g_plain).max())
    weight = weights_for(model, cells, seed=1)
    results = []
    for packed in (True, False):
        model.zero_grad()
        model._core.loss(ids, mask, pos, labels, packed=packed, hidden_cells=cells, hidden_grad=weight,
                         **SPEC.core_args())
        results.append(model.grad_block.copy())
    np.testing.assert_allclose(results[0], results[1], atol=1e-6 * np.abs(results[1]).max())


def test_jacobi_cells_read_the_final_columns():
    """Under Jacobi thoughts (an unrolled batch) a cell names the caller's column."""
    model = model_for_thoughts(seed=7)
    ids, mask, pos, labels = batch_with([2, 2], seed=3)
    cells = cells_of(ids, mask)
    spec = SPEC.with_mode("jacobi")
    logits = model.forward(ids, mask, pos, thoughts=spec)
    states = model.hidden_states(ids, cells, mask, pos, thoughts=spec)
    wte = model.params["transformer.wte.weight"]
    for k, (b, t) in enumerate(cells):
        np.testing.assert_allclose(states[k, -1] @ wte.T, logits[b, t], atol=1e-4)
    _, _, hidden = model.loss_and_count(ids, labels, mask, pos, thoughts=spec, hidden_cells=cells, backward=False)
    np.testing.assert_allclose(hidden, states, atol=1e-5)


# ---------------------------------------------------------------- CODI's distillation term


def torch_distillation(student, teacher, loss, div_std, factor):
    """CODI's term as its code computes it (zhenyi4/codi src/model.py, CODI.forward)."""
    s = torch.tensor(student, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(teacher, dtype=torch.float64)
    fct = torch.nn.SmoothL1Loss() if loss == "smooth_l1" else torch.nn.MSELoss()
    total = 0
    for j in range(s.shape[1]):
        out, ref = s[:, j:j + 1], t[:, j:j + 1]
        term = fct(out, ref.detach())
        if div_std:
            if loss == "l2":
                term = term / ref.std()
            term = term / ref.std()
        total = total + term
    total = total / s.shape[1] * factor
    total.backward()
    return total.item(), s.grad.numpy()


@pytest.mark.parametrize("loss, div_std, factor", [("smooth_l1", True, 1.0), ("smooth_l1", False, 2.5),
                                                   ("l2", True, 1.0), ("l2", False, 0.5)])
def test_distillation_term_equals_torch_autograd(loss, div_std, factor):
    rng = np.random.default_rng(0)
    teacher = rng.normal(0, 2.0, (4, 3, 16))
    student = teacher + rng.normal(0, 1.2, teacher.shape)   # both sides of smooth L1's |d| = 1
    got, grad = distillation_loss_and_grad(student, teacher, loss=loss, div_std=div_std, factor=factor)
    want, want_grad = torch_distillation(student, teacher, loss, div_std, factor)
    assert abs(got - want) <= 1e-12 * abs(want)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-9)


def test_distillation_trains_a_student_toward_a_teacher_through_the_core():
    """One call: the student's loss plus CODI's term on the teacher's detached states;
    the gradients are those of torch's CE + distillation."""
    model = model_for_thoughts(seed=8)
    ids, mask, pos, labels = batch_with([3, 1], seed=9)
    cells = cells_of(ids, mask)[::2]
    teacher = model.hidden_states(ids, cells, mask, pos, thoughts=SPEC.with_mode("pause"))
    terms = []

    def hidden_grad(student):
        value, grad = distillation_loss_and_grad(student, teacher)
        terms.append(value)
        return grad

    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=cells, hidden_grad=hidden_grad)
    hf = hf_twin(model)
    ce, _, hidden = torch_codi.codi_forward(hf, None, ids, mask, pos, labels, LAT, cells)
    t = torch.from_numpy(teacher)
    term = sum(torch.nn.functional.smooth_l1_loss(hidden[:, j], t[:, j]) / t[:, j].std()
               for j in range(t.shape[1])) / t.shape[1]
    hf.zero_grad()
    (ce + term).backward()
    assert abs(loss - ce.item()) <= 1e-5 * ce.item()
    assert abs(terms[0] - term.item()) <= 1e-4 * term.item()
    assert_grads_close({k: g.astype(np.float64) for k, g in model.grads.items()},
                       {n: p.grad.double().numpy() for n, p in hf.named_parameters()})


# ---------------------------------------------------------------- bad input


def test_bad_cells_and_gradients_name_the_tensor():
    model = model_for_thoughts(seed=1)
    ids, mask, pos, labels = batch_with([1, 1], seed=1)
    E, C = model.config.n_layer + 1, model.config.n_embd
    good = np.array([[0, 2], [1, 3]])
    for cells in ([[2, 0]], [[0, ids.shape[1]]], [[-1, 0]], [[0, 0, 0]], [0, 1]):
        with pytest.raises(ValueError, match="hidden_cells"):
            model.loss_and_count(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=np.array(cells))
        with pytest.raises(ValueError, match="hidden_cells"):
            model.hidden_states(ids, np.array(cells), mask, pos, thoughts=SPEC)
    for shape in ((2, E, C + 1), (3, E, C), (2, E - 1, C), (2, E * C)):
        with pytest.raises(ValueError, match="hidden_grad"):
            model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=good,
                                hidden_grad=np.zeros(shape, np.float32))
        with pytest.raises(ValueError, match="hidden_grad"):
            model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=good,
                                hidden_grad=lambda h: np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="hidden_grad needs hidden_cells"):
        model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_grad=np.zeros((2, E, C), np.float32))
    with pytest.raises(ZeroDivisionError):
        model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=good, hidden_grad=lambda h: 1 / 0)
    with pytest.raises(ValueError, match="bf16: hidden_cells"):
        model.bf16 = True
        model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=good)
    model.bf16 = False
    # the model still computes afterwards
    model.loss_and_grad(ids, labels, mask, pos, thoughts=SPEC, hidden_cells=good)
    with pytest.raises(ValueError, match="student and teacher"):
        distillation_loss_and_grad(np.zeros((2, E, C)), np.zeros((2, E, C + 1)))
