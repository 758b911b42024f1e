"""Every bad input becomes a Python exception that names the tensor and place; nothing
crashes, prints or exits."""
import numpy as np
import pytest

import coconut
from hf_bridge import padded_batch, small_model


@pytest.fixture
def model():
    return small_model()


def test_ids_outside_the_vocabulary(model):
    ids, mask, pos, labels = padded_batch()
    ids[2, 5] = 97
    with pytest.raises(ValueError, match=r"input_ids\[2, 5\] = 97 is outside the vocabulary"):
        model.loss_and_grad(ids, labels, mask, pos)
    ids[2, 5] = -1
    with pytest.raises(ValueError, match=r"input_ids\[2, 5\] = -1"):
        model.forward(ids, mask, pos)


def test_labels_outside_the_vocabulary(model):
    ids, mask, pos, labels = padded_batch()
    labels[0, 9] = 500
    with pytest.raises(ValueError, match=r"labels\[0, 9\] = 500"):
        model.loss_and_grad(ids, labels, mask, pos)


def test_sequence_longer_than_positions(model):
    ids = np.zeros((1, 65), np.int64)
    with pytest.raises(ValueError, match="exceeds the model's n_positions = 64"):
        model.forward(ids)


def test_position_ids_outside_the_table(model):
    ids, mask, pos, labels = padded_batch()
    pos[1, 3] = 64
    with pytest.raises(ValueError, match=r"position_ids\[1, 3\] = 64"):
        model.loss_and_grad(ids, labels, mask, pos)


def test_wrong_shapes_and_dtypes(model):
    ids, mask, pos, labels = padded_batch()
    with pytest.raises(ValueError, match=r"attention_mask has shape \(3, 16\)"):
        model.forward(ids, mask[:, :16], pos)
    with pytest.raises(ValueError, match="input_ids must hold integers"):
        model.forward(ids.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.forward(np.zeros((2, 3, 4), np.int64))
    with pytest.raises(ValueError, match=r"attention_mask\[0, 0\] = 2"):
        model.forward(ids, np.full_like(mask, 2), pos)
    with pytest.raises(ValueError, match="float32"):
        model._core.bind(np.zeros(10, np.float64))


def test_non_finite_loss(model):
    ids, mask, pos, labels = padded_batch()
    model.params["transformer.ln_f.weight"][0] = np.inf
    with pytest.raises(FloatingPointError, match="not finite"):
        model.loss_and_grad(ids, labels, mask, pos)


def test_no_supervised_position(model):
    ids, mask, pos, labels = padded_batch()
    labels[:, 1:] = -100
    labels[:, 0] = 5  # the first label never counts: nothing predicts it
    for backward in (True, False):
        with pytest.raises(ValueError, match=r"labels: no supervised position \(every label after the first is -100\)"):
            model.loss_and_count(ids, labels, mask, pos, backward=backward)


def test_bad_configs():
    with pytest.raises(ValueError, match="not divisible"):
        coconut.GPT2Config(n_layer=1, n_head=5, n_embd=48, vocab_size=10, n_positions=8)
    with pytest.raises(ValueError, match="dropout"):
        coconut.GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=10, n_positions=8, dropout=1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        coconut.GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=0, n_positions=8)


def test_threads_and_blas_info():
    info = coconut.blas_info()
    assert info["library"] in ("scipy-openblas32", "system OpenBLAS")
    assert info["core"] and info["version"]
    n = coconut.get_num_threads()
    coconut.set_num_threads(1)
    assert coconut.get_num_threads() == 1 and coconut.blas_info()["threads"] == 1
    coconut.set_num_threads(n)
    with pytest.raises(ValueError):
        coconut.set_num_threads(0)


def test_omp_num_threads_is_respected():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import coconut; print(coconut.get_num_threads())"],
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"
