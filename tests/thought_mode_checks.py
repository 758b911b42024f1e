"""What the tests of the soft and jacobi thought modes share: the core's loss, every
parameter gradient and the fed-back vectors against a PyTorch re-enactment
(coconut/reference/torch_thought_modes.py) on the same weights, at a given thread count.

fp32 on both sides, dropout 0. Tolerances, as tests/test_thoughts.py: the loss within
1e-5 relative, every gradient within 1e-4 of its tensor's largest entry, the fed-back
vectors within 1e-5 absolute (the core's pass-by-pass sums with the key/value cache
against torch's full forwards differ by fp32 rounding only; observed about 1e-7, 1e-6
and 1.5e-6)."""
from __future__ import annotations

import contextlib

import numpy as np

import coconut
from hf_bridge import hf_twin
from test_thoughts import assert_grads_close


@contextlib.contextmanager
def threads(n):
    before = coconut.get_num_threads()
    coconut.set_num_threads(n)
    try:
        yield
    finally:
        coconut.set_num_threads(before)


def core_run(model, batch, spec):
    """(loss, gradients, fed-back vectors per example) of the C core."""
    ids, mask, pos, labels = batch
    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos, thoughts=spec)
    grads = {n: g.astype(np.float64) for n, g in model.grads.items()}
    _, fed = model.forward(ids, mask, pos, thoughts=spec, return_thoughts=True)
    return loss, grads, fed


def reference_run(model, batch, forward, **kw):
    """The same from a re-enactment `forward(hf, ids, mask, pos, labels, latent_id, **kw)`."""
    from test_thoughts import LAT
    hf = hf_twin(model)
    loss, _, fed = forward(hf, *batch, LAT, **kw)
    hf.zero_grad()
    loss.backward()
    return loss.item(), {n: p.grad.double().numpy() for n, p in hf.named_parameters()}, fed


def assert_same_run(got, want):
    (loss, grads, fed), (ref_loss, ref_grads, ref_fed) = got, want
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss), (loss, ref_loss)
    assert_grads_close(grads, ref_grads, tol=1e-4)
    assert len(fed) == len(ref_fed)
    for b, (g, w) in enumerate(zip(fed, ref_fed)):
        assert g.shape == w.shape, (b, g.shape, w.shape)
        if len(w):
            np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)

