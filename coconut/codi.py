"""CODI's distillation term (Shen et al. 2025, zhenyi4/codi) on hidden states the core
hands back (GPT2.loss_and_count / GPT2.hidden_states with hidden_cells), and its
gradient for the student's, to pass back as hidden_grad. Pure NumPy.

From zhenyi4/codi, src/model.py, ``CODI.forward``: for every entry j of
``outputs.hidden_states`` (all n_layer + 1: the embeddings, each block's output, the
last after ln_f), the student's and the teacher's states at one cell per example (the
token before the answer's first token in each sequence) give
``distill_loss_fct(student_j, teacher_j.detach())``: ``nn.SmoothL1Loss()`` (beta 1, the
mean over every element of the (batch, 1, C) selection; the default
``distill_loss_type``) or ``nn.MSELoss()`` ("l2"). With ``distill_loss_div_std`` (its
scripts set it) that term is divided by ``teacher_j.std()`` (torch's unbiased std over
the whole selection, of the detached teacher), twice for "l2". The terms are averaged
over the n_layer + 1 entries and multiplied by ``distill_loss_factor`` (default 1).
"""
from __future__ import annotations

import numpy as np

LOSSES = ("smooth_l1", "l2")


def distillation_loss_and_grad(student, teacher, *, loss: str = "smooth_l1", div_std: bool = True,
                               factor: float = 1.0) -> tuple[float, np.ndarray]:
    """(CODI's distillation loss, its gradient with respect to `student`) for hidden
    states of shape (n cells, n_layer + 1, C); the teacher's receive no gradient.
    The gradient is float32 of the student's shape: loss_and_grad's hidden_grad."""
    s = np.asarray(student, dtype=np.float64)
    t = np.asarray(teacher, dtype=np.float64)
    if s.ndim != 3 or s.shape != t.shape:
        raise ValueError(f"student and teacher must be hidden states of one shape (cells, n_layer + 1, C), "
                         f"got {s.shape} and {t.shape}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    n, E, C = s.shape
    if n == 0:
        raise ValueError("student: no cells")
    d = s - t
    if loss == "smooth_l1":   # beta 1: 0.5 d^2 where |d| < 1, |d| - 0.5 elsewhere
        per = np.where(np.abs(d) < 1.0, 0.5 * d * d, np.abs(d) - 0.5)
        dper = np.clip(d, -1.0, 1.0)
    else:
        per = d * d
        dper = 2.0 * d
    # each entry's mean over its n*C elements, then the mean over the E entries
    scale = np.full(E, factor / (E * n * C))
    if div_std:
        if n * C < 2:
            raise ValueError("teacher: the std of a single element is undefined (div_std needs n * C >= 2)")
        std = t.reshape(n, E, C).transpose(1, 0, 2).reshape(E, -1).std(axis=1, ddof=1)
        scale = scale / (std * std if loss == "l2" else std)
    value = float(np.sum(per.sum(axis=(0, 2)) * scale))
    grad = (dper * scale[None, :, None]).astype(np.float32)
    return value, grad
