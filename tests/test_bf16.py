"""bf16 mixed precision (model.bf16, the config's `bf16: true`) against PyTorch's
`torch.autocast("cpu", dtype=torch.bfloat16)` on transformers' GPT2LMHeadModel: the
rounding itself bit for bit, logits, loss, every gradient, continuous and Jacobi thoughts
and decoding (soft thoughts refuse bf16). Each comparison also shows that a plain fp32 run
fails the same tolerance.
Each runs on both kernels, the emulated one and (where the CPU has AVX512-BF16) the
native one, which is also checked alone against float64 products of rounded operands.

One deliberate difference: transformers' GPT-2 GELU ("gelu_new") is a chain of
elementwise ops, each of which autocast runs and rounds in bf16; the core computes GELU
in fp32 and rounds once (its output is the next product's bf16 operand). The reference
model here therefore computes GELU in fp32 and casts back to bf16, the rest is autocast
unchanged."""
import numpy as np
import pytest
import torch

import coconut
from coconut.reference import torch_coconut as tr
from coconut.reference import torch_thought_modes as tm
from coconut import _C
from hf_bridge import hf_twin, padded_batch, small_model
from test_thoughts import BOT, EOS, EOT, LAT, SPEC, batch_with, model_for_thoughts

SHAPES = [dict(n_layer=2, n_head=3, n_embd=48, vocab_size=97),
          dict(n_layer=3, n_head=2, n_embd=20, vocab_size=61),
          dict(n_layer=1, n_head=4, n_embd=32, vocab_size=130)]
# Relative error (2-norm over all elements) against autocast that bf16 meets and fp32
# does not: fp32 differs from autocast by bf16's own rounding (~4e-3 on these shapes),
# the core's bf16 by rounding flips where fp32 sums differ in order (~1e-3).
GRAD_TOL = 2e-3
LOGIT_TOL = 2e-3


class GeluFp32(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.gelu(x.float(), approximate="tanh").to(x.dtype)


def autocast_twin(model):
    hf = hf_twin(model)
    for block in hf.transformer.h:
        block.mlp.act = GeluFp32()
    return hf


def bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


def torch_bf16_bits(x):
    """torch's float32 -> bfloat16 conversion, widened back to float32 bits."""
    b = torch.from_numpy(np.asarray(x, np.float32)).to(torch.bfloat16).view(torch.int16).numpy()
    return b.astype(np.uint16).astype(np.uint32) << 16


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


def grads_rel(got: dict, want: dict) -> float:
    num = sum(np.sum((np.asarray(got[k], np.float64) - want[k]) ** 2) for k in want)
    return float(np.sqrt(num / sum(np.sum(w ** 2) for w in want.values())))


def native_available() -> bool:
    try:
        coconut.set_bf16_kernel("native")
        return True
    except RuntimeError:
        return False
    finally:
        coconut.set_bf16_kernel("auto")


@pytest.fixture(params=["emulated", "native"])
def kernel(request):
    if request.param == "native" and not native_available():
        pytest.skip("this CPU has no AVX512-BF16: the native bf16 kernel cannot run here")
    coconut.set_bf16_kernel(request.param)
    yield request.param
    coconut.set_bf16_kernel("auto")


# ------------------------------------------------------------------ the rounding


def test_rounding_matches_torch_bit_for_bit():
    edge = np.array([
        0x3F808000,  # 1 + 2^-8: a tie, to even (down)
        0x3F818000,  # a tie, to even (up)
        0x3F808001, 0x3F807FFF,  # just above and below a tie
        0x00000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x80008001,  # subnormals, ties among them
        0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF,  # the largest floats: overflow to inf on rounding up
        0x7F800000, 0xFF800000, 0x00000000, 0x80000000,  # +-inf, +-0
        0x7FC00000, 0x7F800001, 0xFFC00001, 0x7FFFFFFF, 0x7F80FFFF,  # quiet, signalling, negative NaNs
    ], np.uint32).view(np.float32)
    rng = np.random.default_rng(0)
    every = rng.integers(0, 2 ** 32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for x in (edge, every):
        got, want = _C._bf16_round(x), torch_bf16_bits(x)
        nan = np.isnan(x)
        # a NaN stays a NaN (torch's vectorised and scalar conversions pick different NaN bits)
        assert np.isnan(got[nan]).all() and np.isnan(want.view(np.float32)[nan]).all()
        assert np.array_equal(bits(got[~nan]), want[~nan])
    assert bits(_C._bf16_round(edge))[10] == 0x7F800000  # 0x7F7F8000 rounds to even: inf
    assert np.isnan(_C._bf16_round(edge[17:])).all()


# ------------------------------------------------------------------ against autocast


def autocast_loss_grads(hf, ids, mask, pos, labels):
    hf.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                 position_ids=torch.from_numpy(pos), labels=torch.from_numpy(labels))
    out.loss.backward()
    grads = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    return out.loss.item(), out.logits.detach().float().numpy(), grads


def our_loss_grads(model, bf16, ids, mask, pos, labels):
    model.bf16 = bf16
    model.zero_grad()
    loss = model.loss_and_grad(ids, labels, mask, pos)
    return loss, model.forward(ids, mask, pos), {n: g.astype(np.float64) for n, g in model.grads.items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_loss_and_gradients_match_autocast(shape, kernel):
    model = small_model(**shape)
    ids, mask, pos, labels = padded_batch(V=shape["vocab_size"], T=24)
    ref_loss, ref_logits, ref_grads = autocast_loss_grads(autocast_twin(model), ids, mask, pos, labels)
    real = mask.astype(bool)  # logits of padding positions carry no meaning
    loss, logits, grads = our_loss_grads(model, True, ids, mask, pos, labels)
    loss32, logits32, grads32 = our_loss_grads(model, False, ids, mask, pos, labels)
    assert abs(loss - ref_loss) <= 1e-4 * abs(ref_loss)
    # logits are bf16 values: most equal autocast's bit for bit, fp32's almost none
    assert np.all(logits == _C._bf16_round(logits))
    assert rel(logits[real], ref_logits[real]) <= LOGIT_TOL < rel(logits32[real], ref_logits[real])
    assert np.mean(logits[real] == ref_logits[real]) >= 0.5
    assert grads_rel(grads, ref_grads) <= GRAD_TOL < grads_rel(grads32, ref_grads)


def test_bf16_leaves_master_weights_and_fp32_results_alone():
    model = small_model()
    ids, mask, pos, labels = padded_batch()
    before = model.param_block.copy()
    fp32 = our_loss_grads(model, False, ids, mask, pos, labels)
    our_loss_grads(model, True, ids, mask, pos, labels)
    assert model.param_block.tobytes() == before.tobytes()
    again = our_loss_grads(model, False, ids, mask, pos, labels)
    assert fp32[0] == again[0] and fp32[1].tobytes() == again[1].tobytes()
    assert all(fp32[2][k].tobytes() == again[2][k].tobytes() for k in fp32[2])


def test_blas_info_names_the_bf16_path():
    info = coconut.blas_info()
    assert info["bf16"].startswith("native" if native_available() else "emulated")
    assert isinstance(info["cpu_avx512_bf16"], bool) and isinstance(info["cpu_amx_bf16"], bool)
    coconut.set_bf16_kernel("emulated")
    assert coconut.blas_info()["bf16"].startswith("emulated")
    coconut.set_bf16_kernel("auto")
    with pytest.raises(ValueError, match="'auto', 'emulated' or 'native'"):
        coconut.set_bf16_kernel("fast")
    if not native_available():
        with pytest.raises(RuntimeError, match="AVX512-BF16"):
            coconut.set_bf16_kernel("native")


# Shapes that cross every block edge of the native kernel (12-row and 32-column tiles,
# 96 rows, 512 columns and 256 values of k per block), odd k included.
PRODUCTS = [(1, 1, 1), (7, 5, 3), (13, 33, 129), (97, 31, 256), (100, 513, 257), (25, 1065, 128), (200, 40, 600)]


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_products_of_rounded_operands(kernel, trans_a, trans_b):
    """C = alpha op(A) op(B) + beta C from raw float32 operands (the native kernel rounds
    them; the emulated one is exact on operands already rounded, as a bf16 run's are),
    against float64 products of the rounded operands. The bound is fp32 summation:
    |error| <= 1e-6 * sum_k |a_ik b_kj| + |beta C| * 2^-23. beta = 0 never reads C."""
    rng = np.random.default_rng(3)
    for m, n, k in PRODUCTS:
        a = _C._bf16_round(rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32))
        b = _C._bf16_round(rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32))
        c = rng.standard_normal((m, n)).astype(np.float32)
        a64, b64 = (a.T if trans_a else a).astype(np.float64), (b.T if trans_b else b).astype(np.float64)
        want = 0.5 * (a64 @ b64) - 2.0 * c
        got = _C._matmul_bf16(a, b, c, trans_a, trans_b, 0.5, -2.0)
        bound = 1e-6 * (np.abs(a64) @ np.abs(b64)) + 2.0 * np.abs(c) * 2.0 ** -23 + 1e-30
        assert np.all(np.abs(got - want) <= bound), (m, n, k)
        nan = np.full((m, n), np.nan, np.float32)
        got0 = _C._matmul_bf16(a, b, nan, trans_a, trans_b, 1.0, 0.0)
        assert np.all(np.abs(got0 - a64 @ b64) <= bound), (m, n, k)
    with pytest.raises(ValueError, match="op\\(A\\) is 2x3, op\\(B\\) 4x5"):
        _C._matmul_bf16(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32), np.zeros((2, 5), np.float32),
                        False, False, 1.0, 0.0)


def test_native_kernel_rounds_its_operands():
    """Unrounded operands give the product of their bf16 roundings (to nearest even)."""
    if not native_available():
        pytest.skip("this CPU has no AVX512-BF16: the native bf16 kernel cannot run here")
    rng = np.random.default_rng(4)
    a = rng.standard_normal((9, 70)).astype(np.float32)
    b = rng.standard_normal((70, 45)).astype(np.float32)
    want = _C._bf16_round(a).astype(np.float64) @ _C._bf16_round(b).astype(np.float64)
    coconut.set_bf16_kernel("native")
    try:
        got = _C._matmul_bf16(a, b, np.zeros((9, 45), np.float32), False, False, 1.0, 0.0)
    finally:
        coconut.set_bf16_kernel("auto")
    bound = 1e-6 * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(np.abs(got - want) <= bound)
    assert np.abs(got - a.astype(np.float64) @ b).max() > 100 * bound.max()   # not the fp32 product


# ------------------------------------------------------------------ thoughts and decoding


def thought_model():
    """GPT-2-like weights (model_for_thoughts' larger ones make bf16 chaotic: one rounding
    flip early on changes every later bf16 value by an ulp, for autocast too)."""
    model = small_model(vocab_size=100)
    model.thoughts = SPEC
    return model


def is_product_weight(name):
    return name.endswith(("attn.weight", "proj.weight", "fc.weight", "wte.weight")) or \
        name.endswith(("attn.bias", "proj.bias", "fc.bias"))


@pytest.mark.parametrize("mode", ["continuous", "jacobi"])
@pytest.mark.parametrize("counts", [[0, 2, 3], [1, 3, 4]])
def test_thoughts_match_the_reference_under_autocast(counts, mode, kernel):
    """Thought passes fed back ln_f outputs (fp32 under autocast too): continuous thoughts
    against the reference's passes, Jacobi thoughts (3 iterations) against their
    re-enactment's full forwards. Autocast runs each pass as its own products, so it
    rounds each pass's weight gradient to bf16 and sums them in bf16; the core takes one
    product over all passes and rounds once. The weights of products are therefore held
    to a looser bound than the rest."""
    model = thought_model()
    batch = batch_with(counts)
    hf = autocast_twin(model)
    ids, mask, pos, labels = (torch.from_numpy(x) for x in batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if mode == "continuous":
            loss_t, _, thoughts_t = tr.coconut_forward(hf, ids, mask, pos, labels, LAT)
        else:
            loss_t, _, thoughts_t = tm.jacobi_forward(hf, ids, mask, pos, labels, LAT, iterations=3)
    hf.zero_grad()
    loss_t.backward()
    ref = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    results = {}
    for bf16 in (True, False):
        model.bf16 = bf16
        model.zero_grad()
        loss = model.loss_and_grad(batch[0], batch[3], batch[1], batch[2], thoughts=SPEC.with_mode(mode))
        grads = {n: g.astype(np.float64) for n, g in model.grads.items()}
        _, vectors = model.forward(batch[0], batch[1], batch[2], thoughts=SPEC.with_mode(mode), return_thoughts=True)
        results[bf16] = loss, grads, np.concatenate(vectors)
    want = np.concatenate([np.asarray(t, np.float32).reshape(-1, model.config.n_embd) for t in thoughts_t])
    (loss, grads, vectors), (_, grads32, vectors32) = results[True], results[False]
    assert abs(loss - loss_t.item()) <= 1e-4 * loss_t.item()
    assert rel(vectors, want) <= 1e-3 < rel(vectors32, want)
    rest = [n for n in ref if not is_product_weight(n)]
    assert grads_rel({n: grads[n] for n in rest}, {n: ref[n] for n in rest}) <= GRAD_TOL < \
        grads_rel({n: grads32[n] for n in rest}, {n: ref[n] for n in rest})
    assert grads_rel(grads, ref) <= 5e-3


@pytest.mark.parametrize("mode, prompt", [("none", [5, 17, 33, 2, 9]),
                                          ("jacobi", [5, 17, 33, BOT, LAT, LAT, LAT, EOT])])
def test_generation_follows_the_bf16_logits(mode, prompt, kernel):
    """Greedy decoding under bf16 picks the argmax of bf16 forward logits at each step
    (Jacobi: the prompt's slots filled by the same iterations in both)."""
    model = model_for_thoughts(seed=3)
    model.bf16 = True
    spec = SPEC.with_mode(mode)
    new = model.generate([prompt], max_new_tokens=6, eos_id=EOS, thoughts=spec)[0]
    seq = list(prompt)
    for tok in new:
        logits = model.forward(np.array([seq]), thoughts=spec)[0, -1]
        assert logits.tobytes() == _C._bf16_round(logits).tobytes()
        assert tok == int(np.argmax(logits))
        seq.append(tok)
