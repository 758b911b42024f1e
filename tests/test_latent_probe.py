"""The latent value probe wired to a model (coconut/analysis/latent_probe.py): node values
equal the softmax of the core's own logits at the position that computes each thought,
for the symbolic and the BPE tokenization; the dataset summary aggregates per thought."""
import numpy as np
import pytest

import coconut
from coconut.analysis import aggregate_value_summaries, distances, frontier_value_summary, softmax
from coconut.analysis.latent_probe import (depth_dataset, layer_tables, node_tokens, probe_dataset, probe_example,
                                          probe_values, thought_logits, thought_vectors)
from coconut.curriculum.sequence import latent_prompt
from coconut.data import generate_prosqa
from coconut.tokenizer.symbolic import ProsQASymbolic


def make_model(vocab, n_positions, seed=0):
    cfg = coconut.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=vocab, n_positions=n_positions, dropout=0.0)
    model = coconut.GPT2(cfg, seed=seed)
    for view in model.params.values():
        if view.ndim == 2:
            view *= 5.0   # sharper distributions than GPT-2's init
    return model.eval()


def core_probs(model, tok, ex, k):
    """Next-token distributions the core computes at <bot> and at latents 1..k-1."""
    ids = latent_prompt(tok, ex, k)
    logits = model.forward(np.array([ids]), thoughts=tok.thought_spec("continuous"))
    bot = ids.index(tok.bot_id)
    return softmax(logits[0, bot:bot + k])


def test_symbolic_values_are_the_core_distribution():
    examples = generate_prosqa(3, seed=5)
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200)
    for ex in examples:
        n = len(ex.idx_to_symbol)
        vals = probe_values(model, tok, ex, 4)
        assert vals.shape == (4, n)
        probs = core_probs(model, tok, ex, 4)
        np.testing.assert_allclose(vals, probs[:, :n], atol=1e-5)
        assert np.all(vals.sum(axis=1) < 1.0 + 1e-9)
        assert np.ptp(vals) > 1e-3          # values vary across nodes and thoughts
    assert node_tokens(tok, examples[0]) == {i: [i] for i in range(len(examples[0].idx_to_symbol))}


def test_bpe_values_read_the_first_token_of_each_name():
    from coconut.tokenizer.text import TextTokenization
    tok = TextTokenization()
    ex = generate_prosqa(1, seed=2)[0]
    model = make_model(tok.vocab_size, 512, seed=3)
    mapping = node_tokens(tok, ex)
    for i, name in enumerate(ex.idx_to_symbol):
        assert mapping[i][0] == tok.tokenizer.encode(" " + name)[0]
    vals = probe_values(model, tok, ex, 2)
    probs = core_probs(model, tok, ex, 2)
    expected = probs[:, [mapping[i][0] for i in range(len(ex.idx_to_symbol))]]
    np.testing.assert_allclose(vals, expected, rtol=1e-4, atol=1e-9)


def test_probe_dataset_averages_per_thought():
    examples = generate_prosqa(4, seed=7)
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=1)
    got = probe_dataset(model, tok, examples, 3)
    per = [frontier_value_summary(probe_values(model, tok, ex, 3), ex) for ex in examples]
    want = aggregate_value_summaries(per)
    assert sorted(got) == [0, 1, 2]
    for t in got:
        assert got[t]["n"] == 4
        for key in ("frontier_mean", "rest_mean", "precision_at_frontier"):
            assert got[t][key] == pytest.approx(want[t][key], nan_ok=True)
    manual = np.mean([per[i][0]["frontier_mean"] for i in range(4)])
    assert got[0]["frontier_mean"] == pytest.approx(manual)
    with pytest.raises(ValueError):
        probe_values(model, tok, examples[0], 0)


def test_depth_dataset_averages_each_layer():
    examples = generate_prosqa(3, seed=9)
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=2)
    got = depth_dataset(model, tok, examples, 2, max_depth=3)
    assert got["by_depth"].shape == (2, 4) and got["unreachable"].shape == (2,)
    # the root's value, layer 0, is the mean of each example's root value under each thought
    roots = [probe_values(model, tok, ex, 2)[:, ex.root] for ex in examples]
    np.testing.assert_allclose(got["by_depth"][:, 0], np.mean(roots, axis=0), rtol=1e-12)
    # layer 1 of one example by hand
    one = depth_dataset(model, tok, examples[:1], 2, max_depth=3)
    ex = examples[0]
    children = [u for u, d in distances(ex).items() if d == 1]
    np.testing.assert_allclose(one["by_depth"][:, 1], probe_values(model, tok, ex, 2)[:, children].mean(axis=1))
    with pytest.raises(ValueError):
        depth_dataset(model, tok, [], 2)


def test_thoughts_are_causal_and_the_offset_moves_the_frontier():
    ex = generate_prosqa(1, seed=11)[0]
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=4)
    three = probe_values(model, tok, ex, 3)
    # causal attention: a thought does not see the ones after it
    for k in (1, 2):
        np.testing.assert_allclose(probe_values(model, tok, ex, k), three[:k], rtol=1e-5, atol=1e-9)
    reached = probe_example(model, tok, ex, 3, depth_offset=0)
    assert reached[0]["frontier"] == [ex.root] and reached[0]["frontier_mean"] == pytest.approx(three[0, ex.root])
    assert reached[0]["optimal_mean"] == pytest.approx(three[0, ex.root])     # the root is on every path
    assert reached[1]["frontier"] == probe_example(model, tok, ex, 3)[0]["frontier"]
    assert probe_dataset(model, tok, [ex], 3, depth_offset=0)[2]["frontier_mean"] == \
        pytest.approx(reached[2]["frontier_mean"])


def test_soft_thought_values_are_the_mixture_weights():
    """A soft thought is softmax(logits / temperature) @ wte: the probe's full-vocabulary
    distribution, mixed with the embedding matrix, must give back the vector the core fed
    into the slot, and the node values are those weights at the nodes' tokens."""
    ex = generate_prosqa(1, seed=4)[0]
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=1)
    wte = np.asarray(model.params["transformer.wte.weight"], dtype=np.float64)
    for temperature in (1.0, 0.5):
        spec = tok.thought_spec("soft", temperature=temperature)
        weights = softmax(thought_logits(model, tok, ex, 3, thoughts=spec))
        np.testing.assert_allclose(weights @ wte, thought_vectors(model, tok, ex, 3, thoughts=spec), atol=2e-5)
        n = len(ex.idx_to_symbol)
        np.testing.assert_allclose(probe_values(model, tok, ex, 3, thoughts=spec), weights[:, :n], rtol=1e-6)
    sharp, flat = (probe_values(model, tok, ex, 3, thoughts=tok.thought_spec("soft", temperature=t)) for t in (0.5, 2.0))
    assert np.max(sharp) > np.max(flat)     # the temperature reaches the weights


def test_jacobi_thoughts_decode_their_last_inputs_and_pause_is_refused():
    ex = generate_prosqa(1, seed=6)[0]
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=2)
    spec = tok.thought_spec("jacobi", iterations=2)
    vectors = thought_vectors(model, tok, ex, 3, thoughts=spec).astype(np.float64)
    logits = vectors @ np.asarray(model.params["transformer.wte.weight"], dtype=np.float64).T
    n = len(ex.idx_to_symbol)
    np.testing.assert_allclose(probe_values(model, tok, ex, 3, thoughts=spec), softmax(logits)[:, :n], rtol=1e-6)
    assert not np.allclose(probe_values(model, tok, ex, 3, thoughts=spec), probe_values(model, tok, ex, 3), atol=1e-4)
    with pytest.raises(ValueError, match="reads thoughts fed back .* not 'pause' ones"):
        probe_values(model, tok, ex, 3, thoughts=tok.thought_spec("pause"))


def test_layer_tables_are_the_three_readings_at_once():
    examples = generate_prosqa(4, seed=8)
    tok = ProsQASymbolic(max_nodes=32)
    model = make_model(tok.vocab_size, 200, seed=3)
    spec = tok.thought_spec("soft", temperature=0.5)
    tables = layer_tables(model, tok, examples, 3, thoughts=spec)
    np.testing.assert_equal(tables["reached"], probe_dataset(model, tok, examples, 3, depth_offset=0, thoughts=spec))
    np.testing.assert_equal(tables["next"], probe_dataset(model, tok, examples, 3, depth_offset=1, thoughts=spec))
    np.testing.assert_equal(tables["layers"], depth_dataset(model, tok, examples, 3, max_depth=3, thoughts=spec))
    with pytest.raises(ValueError, match="no examples"):
        layer_tables(model, tok, [], 3)
