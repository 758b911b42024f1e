"""Tests of coconut.analysis on hand-made graphs and on the official ProsQA validation file."""
import math
import types

import numpy as np
import pytest

from coconut.analysis import (
    PATH_CLASSES,
    aggregate_depth_profiles,
    aggregate_value_summaries,
    attention_summary,
    class_counts,
    class_fractions,
    classify,
    classify_detailed,
    depth_profile,
    distances,
    edge_list,
    edge_sentence,
    frontier,
    frontier_edges,
    frontier_value_summary,
    is_reachable,
    node_token_map,
    node_values,
    optimal_path_edges,
    optimal_path_nodes,
    parse_output,
    question_edge_spans,
    reachable,
    shared_first_tokens,
    shortest_paths,
)
from coconut.data import official

# A small DAG.  Tom(0) is the root, lempus(4) the target, scrompus(5) the negative target.
#   Tom -> wumpus, yumpus, gorpus      (depth 1)
#   wumpus -> zumpus, yumpus; yumpus -> zumpus; gorpus -> impus, numpus
#   impus -> zumpus; zumpus -> lempus
#   Alex -> scrompus, impus            (Alex and scrompus are out of Tom's reach)
G1 = {
    "question": "",
    "steps": [],
    "answer": "Tom is a lempus.",
    "idx_to_symbol": ["Tom", "wumpus", "yumpus", "zumpus", "lempus", "scrompus",
                      "Alex", "gorpus", "impus", "numpus"],
    "edges": [[0, 1], [0, 2], [0, 7], [1, 3], [2, 3], [1, 2], [3, 4], [7, 8], [8, 3],
              [6, 5], [6, 8], [7, 9]],
    "root": 0,
    "target": 4,
    "neg_target": 5,
}


def make(d):
    return types.SimpleNamespace(**d)


def with_question(d):
    """Give a hand-made graph a question in the official form (sentences in edge order)."""
    ex = make(d)
    sents = [edge_sentence(ex.idx_to_symbol[s], ex.idx_to_symbol[t]) for s, t in ex.edges]
    names = ex.idx_to_symbol
    ex.question = " ".join(sents) + f" Is {names[ex.root]} a {names[ex.target]} or {names[ex.neg_target]}?"
    return ex


@pytest.fixture(scope="module")
def prosqa_valid():
    return official("prosqa", "valid")


# ---------------------------------------------------------------- graph helpers

def test_distances_and_reachability():
    ex = make(G1)
    dist = distances(ex)
    assert dist == {0: 0, 1: 1, 2: 1, 7: 1, 3: 2, 8: 2, 9: 2, 4: 3}
    assert reachable(ex) == {0, 1, 2, 3, 4, 7, 8, 9}
    assert reachable(ex, max_depth=1) == {0, 1, 2, 7}
    assert reachable(ex, src=6) == {6, 5, 8, 3, 4}
    assert is_reachable(ex, 0, 4) and not is_reachable(ex, 0, 5) and not is_reachable(ex, 4, 0)


def test_frontier_shortest_and_walk():
    ex = make(G1)
    assert frontier(ex, 0) == {0}
    assert frontier(ex, 1) == {1, 2, 7}
    assert frontier(ex, 2) == {3, 8, 9}
    assert frontier(ex, 3) == {4}
    assert frontier(ex, 4) == set()
    # yumpus is a child AND a grandchild (via wumpus): only the walk layers repeat it
    assert frontier(ex, 2, mode="walk") == {2, 3, 8, 9}
    assert frontier(ex, 3, mode="walk") == {3, 4}
    assert frontier(ex, 4, mode="walk") == {4}
    with pytest.raises(ValueError):
        frontier(ex, 1, mode="dfs")


def test_frontier_edges():
    ex = make(G1)
    assert frontier_edges(ex, 0) == set()
    assert frontier_edges(ex, 1) == {(0, 1), (0, 2), (0, 7)}
    # (1, 2) leads to a node already at depth 1: not a frontier edge
    assert frontier_edges(ex, 2) == {(1, 3), (2, 3), (7, 8), (7, 9)}
    # (8, 3) joins two depth-2 nodes: not a frontier edge either
    assert frontier_edges(ex, 3) == {(3, 4)}
    assert frontier_edges(ex, 2, mode="walk") == {(1, 3), (1, 2), (2, 3), (7, 8), (7, 9)}


def test_shortest_paths_and_optimal_edges():
    ex = make(G1)
    assert shortest_paths(ex) == [[0, 1, 3, 4], [0, 2, 3, 4]]
    assert shortest_paths(ex, 0, 8) == [[0, 7, 8]]
    assert shortest_paths(ex, 0, 5) == []
    assert shortest_paths(ex, 3, 3) == [[3]]
    assert optimal_path_edges(ex) == {(0, 1), (1, 3), (0, 2), (2, 3), (3, 4)}
    assert optimal_path_nodes(ex) == {0, 1, 2, 3, 4}
    # two diamonds in a row: 2 x 2 = 4 shortest paths
    diamond = make({"idx_to_symbol": list("abcdefg"), "root": 0, "target": 6,
                    "edges": [[0, 1], [0, 2], [1, 3], [2, 3], [3, 4], [3, 5], [4, 6], [5, 6]]})
    assert shortest_paths(diamond) == [[0, 1, 3, 4, 6], [0, 1, 3, 5, 6], [0, 2, 3, 4, 6], [0, 2, 3, 5, 6]]
    # a shortcut 0 -> 3 leaves only the two paths through it
    diamond.edges = diamond.edges + [[0, 3]]
    assert shortest_paths(diamond) == [[0, 3, 4, 6], [0, 3, 5, 6]]


# ---------------------------------------------------------------- sentence parsing

def test_parse_output_forms():
    ex = make(G1)
    p = parse_output("Tom is a wumpus.\nEvery wumpus is a zumpus.\n### Tom is a lempus.", ex)
    assert p.sentences == ["Tom is a wumpus.", "Every wumpus is a zumpus."]
    assert p.path_edges == [(0, 1), (1, 3)]
    assert p.path_nodes() == [0, 1, 3]
    assert p.answer_text == "Tom is a lempus."
    assert p.answer_edge == (0, 4) and p.answer_node == 4 and p.answer_correct
    # "an", odd capitalisation, two sentences on a line, blank lines, special tokens
    p = parse_output("every Wumpus is an zumpus.  Every zumpus is a lempus.\n### Tom is a scrompus.<|endoftext|>", ex)
    assert p.path_edges == [(1, 3), (3, 4)]
    assert p.answer_text == "Tom is a scrompus." and p.answer_node == 5 and not p.answer_correct
    # unknown symbols and non-edge sentences give None, in place
    p = parse_output("Tom is a blorpus.\nThe answer is clear.\nEvery zumpus is a lempus.", ex)
    assert p.path_edges == [None, None, (3, 4)]
    assert p.path_nodes() is None and not p.has_answer_marker
    # everything before the last <|end-latent|> is ignored (question, thoughts)
    p = parse_output("Every gorpus is a impus.<|start-latent|><|latent|><|end-latent|>### Tom is a lempus.", ex)
    assert p.sentences == [] and p.answer_correct


def test_glued_sentence_without_dot_is_unreadable():
    ex = make(G1)
    p = parse_output("every Wumpus is an zumpus Every zumpus is a lempus.\n###", ex)
    assert p.path_edges == [None]
    assert p.answer_text == "" and not p.answer_correct


def test_edge_sentence_round_trip_and_question_spans():
    ex = with_question(G1)
    for s, d in edge_list(ex):
        text = edge_sentence(ex.idx_to_symbol[s], ex.idx_to_symbol[d])
        assert text.startswith("Every ") != ex.idx_to_symbol[s][0].isupper()
        assert parse_output(text, ex).path_edges == [(s, d)]
    spans = question_edge_spans(ex)
    assert [e for _, _, e in spans[:-1]] == edge_list(ex)
    assert spans[-1][2] is None and ex.question[spans[-1][0]:spans[-1][1]].startswith("Is Tom a")
    s0, e0, _ = spans[1]
    assert ex.question[s0:e0] == "Tom is a yumpus."


# ---------------------------------------------------------------- path classes

ANS = "\n### Tom is a lempus."


@pytest.mark.parametrize("text,k", [
    ("Tom is a wumpus.\nEvery wumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
    ("Tom is a yumpus. Every yumpus is a zumpus. Every zumpus is a lempus. ### Tom is a lempus.", 0),
    ("Every yumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 1),
    ("Every wumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 1),
    ("Every zumpus is a lempus." + ANS, 2),
    # restating a latent step in words (starts at depth 1 < k = 2) still completes
    ("Every wumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 2),
    # the class is decided by the path; the answer line only matters without a path
    ("Every zumpus is a lempus.\n### Tom is a scrompus.", 2),
])
def test_correct_path(text, k):
    assert classify(make(G1), text, k) == "correct_path"


@pytest.mark.parametrize("text,k", [
    ("Tom is a gorpus.\nEvery gorpus is a impus.\nEvery impus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
    ("Tom is a wumpus.\nEvery wumpus is a yumpus.\nEvery yumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
    ("Every gorpus is a impus.\nEvery impus is a zumpus.\nEvery zumpus is a lempus." + ANS, 1),
    ("Every wumpus is a yumpus.\nEvery yumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 2),
])
def test_longer_path(text, k):
    assert classify(make(G1), text, k) == "longer_path"


@pytest.mark.parametrize("text,k", [
    # a non-existent edge (wumpus -> lempus)
    ("Tom is a wumpus.\nEvery wumpus is a lempus." + ANS, 0),
    ("Every wumpus is a lempus." + ANS, 1),
    # disconnected: the chain breaks (wumpus ... yumpus)
    ("Tom is a wumpus.\nEvery yumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
    # disconnected from the question: starts deeper than the thoughts can reach
    ("Every zumpus is a lempus." + ANS, 0),
    ("Every zumpus is a lempus." + ANS, 1),
    # disconnected from the question: a valid path of another person
    ("Alex is a impus.\nEvery impus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
    ("Alex is a impus.\nEvery impus is a zumpus.\nEvery zumpus is a lempus." + ANS, 5),
    # unknown symbol, unreadable sentence
    ("Tom is a wumpus.\nEvery wumpus is a blorpus.\nEvery blorpus is a lempus." + ANS, 0),
    ("Tom is a wumpus.\nSo it goes.\nEvery wumpus is a zumpus.\nEvery zumpus is a lempus." + ANS, 0),
])
def test_hallucination(text, k):
    assert classify(make(G1), text, k) == "hallucination"


@pytest.mark.parametrize("text,k", [
    ("Tom is a gorpus.\nEvery gorpus is a numpus.\n### Tom is a numpus.", 0),
    ("Every gorpus is a numpus.\n### Tom is a numpus.", 1),
    # a valid path that stops before the target
    ("Tom is a wumpus.\nEvery wumpus is a zumpus." + ANS, 0),
    ("Every gorpus is a impus.\n### Tom is a scrompus.", 1),
])
def test_wrong_target(text, k):
    assert classify(make(G1), text, k) == "wrong_target"


@pytest.mark.parametrize("text,k,label", [
    ("### Tom is a lempus.", 0, "correct_label"),
    ("### Tom is a lempus.<|endoftext|>", 3, "correct_label"),
    ("\n### Tom is a lempus.\n", 6, "correct_label"),
    ("### Tom is a scrompus.", 0, "incorrect_label"),
    ("### Tom is a numpus.", 3, "incorrect_label"),
    ("", 6, "incorrect_label"),
])
def test_label_only(text, k, label):
    assert classify(make(G1), text, k) == label


def test_classify_detailed_reports_depth_and_answer():
    c = classify_detailed(make(G1), "Every yumpus is a zumpus.\nEvery zumpus is a lempus.\n### Tom is a numpus.", 1)
    assert c.label == "correct_path" and c.start_depth == 1 and c.path_nodes == [2, 3, 4]
    assert c.answer_correct is False
    with pytest.raises(ValueError):
        classify(make(G1), "", -1)


def test_class_counts_and_fractions():
    ex = make(G1)
    texts = [
        "Tom is a wumpus.\nEvery wumpus is a zumpus.\nEvery zumpus is a lempus." + ANS,  # correct
        "Every zumpus is a lempus." + ANS,                                                 # correct at k=2
        "Every zumpus is a lempus." + ANS,                                                 # halluc. at k=0
        "Tom is a gorpus.\nEvery gorpus is a numpus.\n### Tom is a numpus.",               # wrong target
        "### Tom is a lempus.",                                                            # correct label
    ]
    counts = class_counts([ex] * 5, texts, [0, 2, 0, 0, 3])
    assert counts == {"correct_path": 2, "longer_path": 0, "hallucination": 1, "wrong_target": 1,
                      "correct_label": 1, "incorrect_label": 0}
    assert class_counts([ex] * 2, texts[1:3], 2)["correct_path"] == 2
    fr = class_fractions(counts)
    assert set(fr) == set(PATH_CLASSES) and fr["correct_path"] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        class_counts([ex], texts, 0)


def test_official_steps_are_correct_paths(prosqa_valid):
    first = prosqa_valid[:20]
    for ex in first:
        full = "\n".join(ex.steps) + "\n### " + ex.answer
        assert classify(ex, full, 0) == "correct_path", ex.steps
        # the text a stage-k model is trained to write after k thoughts
        for k in range(1, len(ex.steps)):
            partial = "\n".join(ex.steps[k:]) + "\n### " + ex.answer
            assert classify(ex, partial, k) == "correct_path"
            # the same partial text with too few thoughts is disconnected
            assert classify(ex, partial, k - 1) == "hallucination"
        assert classify(ex, "### " + ex.answer, len(ex.steps)) == "correct_label"
        # answering with the negative target
        wrong = "### " + ex.answer.replace(ex.idx_to_symbol[ex.target], ex.idx_to_symbol[ex.neg_target])
        assert classify(ex, wrong, len(ex.steps)) == "incorrect_label"
        # the question's sentences are exactly the example's edges
        assert sorted(e for _, _, e in question_edge_spans(ex) if e is not None) == sorted(edge_list(ex))


def test_official_all_steps_shortest(prosqa_valid):
    # all 300 official validation step lists are shortest root->target paths
    not_shortest = [i for i, ex in enumerate(prosqa_valid)
                    if classify(ex, "\n".join(ex.steps) + "\n### " + ex.answer) != "correct_path"]
    assert not_shortest == []
    n_paths = [len(shortest_paths(ex)) for ex in prosqa_valid]
    assert min(n_paths) >= 1 and 1.3 < np.mean(n_paths) < 2.0


# ---------------------------------------------------------------- value probe

def test_node_values_probs_and_logits():
    probs = np.array([[0.1, 0.2, 0.3, 0.0, 0.4],
                      [0.5, 0.0, 0.0, 0.25, 0.25]])
    mapping = {0: [2, 0], 1: 4, 3: [1]}       # node 2 missing
    v = node_values(probs, mapping)
    assert v.shape == (2, 4)
    np.testing.assert_allclose(v[:, [0, 1, 3]], [[0.3, 0.4, 0.2], [0.0, 0.25, 0.0]])
    assert np.isnan(v[:, 2]).all()
    logits = np.log(probs[0] + 1e-12) + 7.0
    np.testing.assert_allclose(node_values(logits, mapping)[[0, 1, 3]], [0.3, 0.4, 0.2], atol=1e-9)
    # a probability row is read as logits when told so
    lv = node_values(probs[0], mapping, kind="logits")
    assert lv[0] == pytest.approx(np.exp(0.3) / np.exp(probs[0]).sum())
    assert node_values(probs, [[4], [3]], n_nodes=3).shape == (2, 3)
    with pytest.raises(ValueError):
        node_values(probs, {0: [9]})
    assert shared_first_tokens({0: [2, 0], 1: [2, 5], 2: [3], 3: 3, 4: [1]}) == [[0, 1], [2, 3]]
    ex = make(G1)
    m = node_token_map(ex, lambda s: [ord(c) for c in s])
    assert m[0][:2] == [ord(" "), ord("T")] and len(m) == 10


def test_frontier_value_summary():
    ex = make(G1)
    vals = np.zeros((3, 10))
    vals[0, [1, 2, 7]] = [0.3, 0.5, 0.1]       # thought 0: depth-1 frontier {1, 2, 7}
    vals[0, 5] = 0.05                          # scrompus, unreachable
    vals[1, [3, 8, 9]] = [0.6, 0.2, 0.1]       # thought 1: depth-2 frontier {3, 8, 9}
    vals[1, 1] = 0.4
    s = frontier_value_summary(vals, ex)
    assert s[0]["frontier"] == [1, 2, 7] and s[0]["depth"] == 1
    assert s[0]["frontier_mean"] == pytest.approx(0.3)
    assert s[0]["rest_mean"] == pytest.approx(0.05 / 7)
    assert s[0]["unreachable_mean"] == pytest.approx(0.05 / 2)   # scrompus and Alex
    assert s[0]["optimal_mean"] == pytest.approx(0.4)            # wumpus, yumpus
    assert s[0]["off_path_mean"] == pytest.approx(0.1)           # gorpus
    assert s[0]["frontier_ranks"] == [1.0, 2.0, 3.0]
    assert s[0]["precision_at_frontier"] == pytest.approx(1.0)
    assert s[1]["frontier_mean"] == pytest.approx(0.3)
    assert s[1]["reachable_mean"] == pytest.approx((0.4 + 0.6 + 0.2 + 0.1) / 6)
    assert s[1]["frontier_ranks"] == [1.0, 3.0, 4.0]             # wumpus (0.4) ranks 2nd
    assert s[1]["precision_at_frontier"] == pytest.approx(2 / 3)
    assert s[2]["frontier"] == [4] and s[2]["frontier_ranks"] == [1.0]  # all tied: rank 1
    agg = aggregate_value_summaries([s, {0: s[0]}])
    assert agg[0]["n"] == 2 and agg[1]["n"] == 1
    assert agg[0]["frontier_mean"] == pytest.approx(0.3)
    with pytest.raises(ValueError):
        frontier_value_summary(np.zeros((2, 5)), ex)


def test_depth_profile():
    ex = make(G1)                              # depths: 0 {0}, 1 {1,2,7}, 2 {3,8,9}, 3 {4}; 5, 6 unreachable
    vals = np.zeros((2, 10))
    vals[0, [0, 1, 2, 7]] = [0.6, 0.3, 0.0, 0.0]   # thought 0 holds the root and one child
    vals[0, 5] = 0.1
    vals[1, [3, 8, 9, 4]] = [0.2, 0.1, 0.0, 0.5]
    p = depth_profile(vals, ex, max_depth=4)
    np.testing.assert_allclose(p["by_depth"][0], [0.6, 0.1, 0.0, 0.0, np.nan])
    np.testing.assert_allclose(p["by_depth"][1], [0.0, 0.0, 0.1, 0.5, np.nan])
    # the shortest path is Tom -> wumpus|yumpus -> zumpus -> lempus
    np.testing.assert_allclose(p["on_path"][0], [0.6, 0.15, 0.0, 0.0, np.nan])
    np.testing.assert_allclose(p["on_path"][1], [0.0, 0.0, 0.2, 0.5, np.nan])
    np.testing.assert_allclose(p["unreachable"], [0.05, 0.0])
    q = depth_profile(np.ones((2, 10)), ex, max_depth=4)
    agg = aggregate_depth_profiles([p, q])
    np.testing.assert_allclose(agg["by_depth"][0], [0.8, 0.55, 0.5, 0.5, np.nan])
    with pytest.raises(ValueError):
        depth_profile(np.zeros((2, 5)), ex)
    with pytest.raises(ValueError):
        aggregate_depth_profiles([])


# ---------------------------------------------------------------- attention statistics

def test_attention_summary():
    ex = with_question(G1)
    # pretend every edge sentence is 5 tokens, in edge order, then the final question
    # (8 tokens) and 4 tokens outside any span
    spans = [(5 * i, 5 * i + 5, tuple(e)) for i, e in enumerate(ex.edges)] + [(60, 68, None)]
    attn = np.zeros((2, 72))
    attn[0, 0:5] = 0.1      # (0, 1): frontier at depth 1 and optimal
    attn[0, 10:15] = 0.04   # (0, 7): frontier only
    attn[0, 35:40] = 0.02   # (7, 8): neither, for thought 0
    attn[0, 60] = 0.1       # the question sentence
    attn[0, 70] = 0.1       # outside
    attn[1, 35] = 0.3       # (7, 8): frontier at depth 2, not optimal
    attn[1, 30] = 0.6       # (3, 4): optimal, depth 3
    r = attention_summary(attn, spans, ex)
    np.testing.assert_allclose(r["frontier"], [0.7, 0.3])
    np.testing.assert_allclose(r["optimal"], [0.5, 0.6])
    np.testing.assert_allclose(r["frontier_optimal"], [0.5, 0.0])
    np.testing.assert_allclose(r["frontier_only"], [0.2, 0.3])
    np.testing.assert_allclose(r["optimal_only"], [0.0, 0.6])
    np.testing.assert_allclose(r["other_edges"], [0.1, 0.0])
    np.testing.assert_allclose(r["non_edge_sentences"], [0.1, 0.0])
    np.testing.assert_allclose(r["outside"], [0.1, 0.0])
    np.testing.assert_allclose(r["total"], [1.0, 0.9])
    parts = sum(r[k] for k in ("frontier_optimal", "frontier_only", "optimal_only",
                               "other_edges", "non_edge_sentences", "outside"))
    np.testing.assert_allclose(parts, r["total"])
    np.testing.assert_array_equal(r["n_frontier_edges"], [3, 4])
    np.testing.assert_allclose(r["frontier_per_edge"], [0.7 / 3, 0.3 / 4])
    np.testing.assert_allclose(r["optimal_per_edge"], [0.5 / 5, 0.6 / 5])
    np.testing.assert_allclose(r["other_per_edge"], [0.1 / 6, 0.0])
    # with offset 0 the first thought is compared with depth 0: no frontier edges
    r0 = attention_summary(attn, spans, ex, depth_offset=0)
    assert r0["frontier"][0] == 0.0 and math.isnan(r0["frontier_per_edge"][0])
    assert r0["frontier"][1] == pytest.approx(0.0)     # row 1 vs depth 1: no weight there
    np.testing.assert_array_equal(r0["n_frontier_edges"], [0, 3])
