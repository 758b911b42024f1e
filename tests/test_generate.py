"""Batched KV-cache generation against the reference's one-example, full-recompute
decoding (coconut/reference/torch_coconut.py) on random models: the same tokens."""
import numpy as np
import pytest

from coconut.reference import torch_coconut as tr
from hf_bridge import hf_twin
from test_thoughts import BOT, EOS, EOT, LAT, SPEC, model_for_thoughts


def prompts_with(counts, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in counts:
        q = rng.integers(0, 96, size=int(rng.integers(2, 9))).tolist()
        out.append(q + ([BOT] + [LAT] * k + [EOT] if k is not None else []))
    return out


@pytest.mark.parametrize("mode,counts", [
    ("none", [None, None, None, None]),
    ("continuous", [3, 3, 3]),
    ("continuous", [0, 1, 4, 6, 2]),
    ("pause", [2, 0, 5]),
])
def test_tokens_equal_reference_decoding(mode, counts):
    model = model_for_thoughts(seed=11)
    hf = hf_twin(model)
    prompts = prompts_with(counts, seed=len(counts))
    got = model.generate(prompts, max_new_tokens=12, eos_id=EOS, thoughts=SPEC.with_mode(mode), batch_size=2)
    for prompt, ours in zip(prompts, got):
        ref = tr.reference_generate(hf, prompt, LAT, 12, EOS, mode=mode)
        assert ours == ref


def test_eos_stops_each_example_on_its_own():
    model = model_for_thoughts(seed=2)
    hf = hf_twin(model)
    prompts = prompts_with([1, 2, 3, 0, 5, 1, 2, 4], seed=3)
    free = model.generate(prompts, max_new_tokens=20, eos_id=EOS, thoughts=SPEC)
    # take as "eos" the most common token decoded after the first step
    tokens, counts = np.unique(np.concatenate([f[1:] for f in free]), return_counts=True)
    eos = int(tokens[np.argmax(counts)])
    got = model.generate(prompts, max_new_tokens=20, eos_id=eos, thoughts=SPEC)
    assert len({len(g) for g in got}) > 1  # examples stopped at different steps
    for prompt, ours in zip(prompts, got):
        assert ours == tr.reference_generate(hf, prompt, LAT, 20, eos)
        assert eos not in ours[1:]


def test_generation_stops_at_the_end_of_the_position_table():
    model = model_for_thoughts(seed=1)  # 64 positions
    prompt = list(range(60))
    out = model.generate([prompt], max_new_tokens=30, eos_id=EOS, thoughts="none")[0]
    assert len(out) <= 5  # positions 60..63 can be fed, the token chosen at 63 is the last


def test_bad_generation_arguments():
    model = model_for_thoughts()
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate([[1, 2]], max_new_tokens=0, eos_id=EOS, thoughts="none")
    with pytest.raises(ValueError, match="eos_id"):
        model.generate([[1, 2]], max_new_tokens=3, eos_id=500, thoughts="none")
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        model.generate([[1], []], max_new_tokens=3, eos_id=EOS, thoughts="none")
    with pytest.raises(ValueError, match="outside a <bot>"):
        model.generate([[1, LAT, EOT]], max_new_tokens=3, eos_id=EOS, thoughts=SPEC)


def test_trained_model_decodes_like_the_reference():
    """On a small model trained until it answers with structure (a copy task through two
    thoughts, ending in eos), batched decoding still equals the reference token by token."""
    import coconut
    cfg = coconut.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64, dropout=0.0)
    model = coconut.GPT2(cfg, seed=3)
    rng = np.random.default_rng(0)
    opt = coconut.AdamW(model, lr=1e-2)

    def example():
        q = rng.integers(0, 10, size=4).tolist()
        ids = q + [BOT, LAT, LAT, EOT] + q[-1:] + [EOS]
        return ids, [-100] * 8 + q[-1:] + [EOS]
    for _ in range(500):
        ids, labels = zip(*[example() for _ in range(16)])
        model.zero_grad()
        model.loss_and_grad(np.array(ids), np.array(labels), thoughts=SPEC)
        opt.step()
    hf = hf_twin(model)
    prompts = [example()[0][:8] for _ in range(12)]
    got = model.generate(prompts, max_new_tokens=6, eos_id=EOS, thoughts=SPEC)
    assert all(len(g) < 6 for g in got)  # eos ended every example
    assert np.mean([g[0] == p[3] for g, p in zip(got, prompts)]) > 0.3  # learned: chance is 0.1
    for prompt, ours in zip(prompts, got):
        assert ours == tr.reference_generate(hf, prompt, LAT, 6, EOS)
