"""Attention maps of continuous thoughts (coconut/analysis/attention_maps.py): the NumPy
forward reproduces the core's logits with thoughts in place (its exactness check), its
attention probabilities equal those of `transformers`, and the edge token spans and
summaries are right for the symbolic and the BPE tokenization."""
import numpy as np
import pytest
import torch

import coconut
from coconut.analysis import sentence_edge
from coconut.analysis.attention_maps import (attention_dataset, edge_token_spans, numpy_forward,
                                             prompt_embeddings, thought_attention, thought_attention_summary)
from coconut.curriculum.sequence import latent_prompt
from coconut.data import generate_prosqa
from coconut.tokenizer.symbolic import ProsQASymbolic
from hf_bridge import hf_twin


@pytest.fixture(scope="module")
def setup():
    tok = ProsQASymbolic(max_nodes=32)
    cfg = coconut.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=tok.vocab_size, n_positions=200,
                             dropout=0.0)
    model = coconut.GPT2(cfg, seed=4)
    rng = np.random.default_rng(4)
    for view in model.params.values():   # non-trivial biases and LayerNorms, sharp attention
        if view.ndim == 2:
            view *= 4.0
        else:
            view += rng.normal(0, 0.1, view.shape).astype(np.float32)
    return model.eval(), tok, generate_prosqa(3, seed=11)


def test_numpy_forward_equals_core_logits_with_thoughts(setup):
    model, tok, examples = setup
    for ex, k in zip(examples, (1, 3, 6)):
        ids = latent_prompt(tok, ex, k) + tok.answer_ids(ex)
        logits, thoughts = model.forward(np.array([ids]), thoughts=tok.thought_spec("continuous"),
                                         return_thoughts=True)
        emb = prompt_embeddings(model, tok, ids, thoughts[0])
        ours, maps, hidden = numpy_forward(model.params, model.config, emb)
        assert np.max(np.abs(ours - logits[0])) <= 1e-4
        assert np.abs(logits[0]).max() > 1.0
        # the thoughts are the ln_f outputs before each slot
        slots = [i for i, t in enumerate(ids) if t == tok.latent_id]
        np.testing.assert_allclose(hidden[[s - 1 for s in slots]], thoughts[0], atol=1e-4)
        # without the thoughts in place the logits differ: the check has teeth
        plain, _, _ = numpy_forward(model.params, model.config,
                                    np.asarray(model.params["transformer.wte.weight"], np.float64)[ids])
        assert np.max(np.abs(plain - logits[0])) > 1e-2
        assert maps.shape == (2, 4, len(ids), len(ids))
        np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=1e-12)
        assert np.all(np.triu(maps, k=1) == 0)


def test_attention_probabilities_equal_transformers(setup):
    model, tok, examples = setup
    ex = examples[0]
    ids = latent_prompt(tok, ex, 3)
    emb = prompt_embeddings(model, tok, ids)
    _, maps, _ = numpy_forward(model.params, model.config, emb, want_logits=False)
    hf = hf_twin(model)
    hf.config._attn_implementation = "eager"
    with torch.no_grad():
        out = hf(inputs_embeds=torch.from_numpy(emb.astype(np.float32))[None], output_attentions=True)
    theirs = np.stack([a[0].double().numpy() for a in out.attentions])
    assert np.max(np.abs(theirs - maps)) < 1e-5


def test_thought_attention_rows_and_layers(setup):
    model, tok, examples = setup
    ex = examples[1]
    k = 4
    ids = latent_prompt(tok, ex, k)
    attn = thought_attention(model, tok, ex, k)
    assert attn.shape == (k, len(ids))
    per_layer = thought_attention(model, tok, ex, k, per_layer=True)
    assert per_layer.shape == (2, k, len(ids))
    np.testing.assert_allclose(per_layer.mean(axis=0), attn, atol=1e-12)
    _, maps, _ = numpy_forward(model.params, model.config, prompt_embeddings(model, tok, ids), want_logits=False)
    bot = ids.index(tok.bot_id)
    np.testing.assert_allclose(thought_attention(model, tok, ex, k, layers=1, heads=[2])[2], maps[1, 2, bot + 2])
    np.testing.assert_allclose(attn.sum(axis=1), 1.0, atol=1e-12)
    # row t belongs to position bot + t: it cannot see later positions
    for t in range(k):
        assert np.all(attn[t, bot + t + 1:] == 0) and attn[t, bot + t] > 0


def test_symbolic_spans_and_summary(setup):
    model, tok, examples = setup
    ex = examples[2]
    spans = edge_token_spans(tok, ex)
    q = tok.question_ids(ex)
    edges = [e for _, _, e in spans if e is not None]
    assert len(edges) == len(ex.edges) and set(edges) == {tuple(e) for e in ex.edges}
    for s, e, edge in spans[:-1]:
        assert q[s:e] == [edge[0], edge[1], tok.sep_id]
    assert spans[-1] == (3 * len(ex.edges), len(q), None)
    summary = thought_attention_summary(model, tok, ex, 3)
    parts = sum(summary[key] for key in ("frontier_optimal", "frontier_only", "optimal_only", "other_edges",
                                          "non_edge_sentences", "outside"))
    np.testing.assert_allclose(parts, summary["total"], atol=1e-9)
    np.testing.assert_allclose(summary["total"], 1.0, atol=1e-9)
    attn = thought_attention(model, tok, ex, 3)
    edge_mass = sum(attn[:, s:e].sum(axis=1) for s, e, edge in spans if edge is not None)
    np.testing.assert_allclose(summary["frontier"] + summary["optimal_only"] + summary["other_edges"], edge_mass,
                               atol=1e-9)
    mean = attention_dataset(model, tok, examples, 2)
    one = [thought_attention_summary(model, tok, x, 2)["total"] for x in examples]
    np.testing.assert_allclose(mean["total"], np.mean(one, axis=0))


def test_edge_token_spans_are_one_token_per_edge():
    from coconut.tokenizer.symbolic import ProsQAEdgeTokens
    tok = ProsQAEdgeTokens()
    ex = generate_prosqa(1, seed=9)[0]
    spans = edge_token_spans(tok, ex)
    q = tok.question_ids(ex)
    assert [(s, e) for s, e, _ in spans[:-1]] == [(i, i + 1) for i in range(len(ex.edges))]
    assert [edge for _, _, edge in spans[:-1]] == [tok.edge_of(t) for t in q[:len(ex.edges)]]
    assert spans[-1] == (len(ex.edges), len(q), None)


def test_bpe_spans_cover_each_sentence():
    from coconut.tokenizer.text import TextTokenization
    tok = TextTokenization()
    ex = generate_prosqa(1, seed=9)[0]
    spans = edge_token_spans(tok, ex)
    q = tok.question_ids(ex)
    assert sum(e is not None for _, _, e in spans) == len(ex.edges)
    assert spans[-1][2] is None and "?" in tok.decode(q[spans[-1][0]:spans[-1][1]])
    previous_end = 0
    for s, e, edge in spans:
        assert s >= previous_end   # disjoint, in order
        previous_end = e
        text = tok.decode(q[s:e]).strip()
        if edge is not None:
            assert sentence_edge(text, ex) == edge
