"""Soft thoughts in the C core (a <latent> slot takes softmax(logits / temperature) @ wte,
the logits the LM head's at the position before it) beyond the comparison with the
re-enactment (tests/test_thought_modes.py): the mixture's limits, a finite
difference through the softmax, generation against the re-enactment's decoding, and the
spec's checks."""
import numpy as np
import pytest

import coconut
from coconut import ThoughtSpec
from coconut.reference import torch_thought_modes as tm
from hf_bridge import hf_twin
from test_generate import prompts_with
from test_thoughts import EOS, LAT, THOUGHTS, batch_with, model_for_thoughts


def soft(temperature=1.0):
    return ThoughtSpec("soft", temperature=temperature, **THOUGHTS)


def test_mixture_is_a_point_on_the_embedding_simplex():
    """At a low temperature the mixture is the embedding of the LM head's argmax; at a
    high one, near the mean embedding."""
    model = model_for_thoughts(seed=2)
    ids, mask, pos, _ = batch_with([2, 2], seed=1)
    wte = model.params["transformer.wte.weight"]
    logits = model.forward(ids, mask, pos, thoughts=soft(1e-4))
    _, fed = model.forward(ids, mask, pos, thoughts=soft(1e-4), return_thoughts=True)
    first = int(np.argmax(ids[0] == LAT))
    np.testing.assert_allclose(fed[0][0], wte[np.argmax(logits[0, first - 1])], atol=1e-6)
    _, fed = model.forward(ids, mask, pos, thoughts=soft(1e6), return_thoughts=True)
    np.testing.assert_allclose(fed[0][0], wte.mean(axis=0), atol=1e-4)


def test_gradient_flows_through_the_softmax():
    """d loss / d (embedding of <bot>) reaches the answer only through the first soft
    thought (h(<bot>) -> logits -> mixture): central differences along the gradient."""
    model = model_for_thoughts(seed=4, n_layer=2, n_head=2, n_embd=16)
    ids, mask, pos, labels = batch_with([3, 3], seed=7)
    spec = soft(0.5)
    model.zero_grad()
    model.loss_and_grad(ids, labels, mask, pos, thoughts=spec)
    g = model.grads["transformer.wte.weight"][96 + 1].astype(np.float64)  # <bot>
    assert np.linalg.norm(g) > 1e-4
    row = model.params["transformer.wte.weight"][96 + 1]
    base, eps = row.copy(), 1e-2
    direction = (g / np.linalg.norm(g)).astype(np.float32)
    losses = []
    for sign in (1, -1):
        row[...] = base + sign * eps * direction
        losses.append(model.loss(ids, labels, mask, pos, thoughts=spec))
    row[...] = base
    fd = (losses[0] - losses[1]) / (2 * eps)
    assert abs(fd - np.linalg.norm(g)) <= 2e-3 * np.linalg.norm(g)


@pytest.mark.parametrize("counts", [[3, 3, 3], [0, 1, 4, 6, 2]], ids=str)
def test_generation_equals_reference_decoding(counts):
    model = model_for_thoughts(seed=11)
    hf = hf_twin(model)
    prompts = prompts_with(counts, seed=len(counts))
    got = model.generate(prompts, max_new_tokens=12, eos_id=EOS, thoughts=soft(0.5), batch_size=2)
    for prompt, ours in zip(prompts, got):
        assert ours == tm.thought_generate(hf, prompt, LAT, 12, EOS, "soft", temperature=0.5)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises_naming_it(temperature):
    with pytest.raises(ValueError, match="temperature"):
        soft(temperature)
    model = model_for_thoughts()
    ids, mask, pos, labels = batch_with([1], seed=0)
    with pytest.raises(ValueError, match="temperature"):
        model._core.loss(ids, mask, pos, labels, mode=coconut.thought_spec.THOUGHT_MODES["soft"],
                         temperature=temperature, **THOUGHTS)


def test_soft_thoughts_need_the_thought_ids():
    with pytest.raises(ValueError, match="latent_id"):
        ThoughtSpec("soft")
    model = model_for_thoughts()
    ids, mask, pos, labels = batch_with([1], seed=0)
    for missing in ("latent_id", "bot_id", "eot_id"):
        with pytest.raises(ValueError, match=missing):
            model._core.loss(ids, mask, pos, labels, mode=coconut.thought_spec.THOUGHT_MODES["soft"],
                             **{**THOUGHTS, missing: -1})


def test_bf16_is_refused():
    model = model_for_thoughts()
    model.bf16 = True
    ids, mask, pos, labels = batch_with([1], seed=0)
    with pytest.raises(ValueError, match="bf16"):
        model.loss_and_grad(ids, labels, mask, pos, thoughts=soft())
    with pytest.raises(ValueError, match="bf16"):
        model.generate([[1, 2, 97, 99, 98]], max_new_tokens=2, eos_id=EOS, thoughts=soft())
