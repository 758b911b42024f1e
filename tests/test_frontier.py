"""The frontier layout (method coconut_frontier): stage sequences by hand on a small
graph, the label sets of each target, uniform draws among several candidates, the loss
read by the position before <eot> (against the logits computed here), and a training run
with renamed nodes."""
import math
import random
import types
from collections import Counter

import numpy as np
import pytest

import coconut
from coconut.curriculum import METHODS, FrontierCoconut
from coconut.curriculum.frontier import gold_path
from coconut.data.prosqa_graph import edge_sentence
from coconut.run_config import config_from_dict
from coconut.tokenizer import ProsQAEdgeTokens, ProsQASymbolic, TextTokenization
from coconut.train import train

# Tom(0) -> a(1), b(2); a -> c(3); b -> c; b -> e(5); c -> d(4); e -> f(6). Target d, two
# shortest paths (Tom a c d, Tom b c d); the steps state the first.
NAMES = ["Tom", "apus", "bpus", "cpus", "dpus", "epus", "fpus", "gpus"]
EDGES = [[0, 1], [0, 2], [1, 3], [2, 3], [2, 5], [3, 4], [5, 6]]


def graph():
    steps = [edge_sentence(NAMES[a], NAMES[b]) for a, b in ((0, 1), (1, 3), (3, 4))]
    question = " ".join(edge_sentence(NAMES[a], NAMES[b]) for a, b in EDGES) + " Is Tom a dpus or gpus?"
    return types.SimpleNamespace(question=question, steps=steps, answer="Tom is a dpus.", idx_to_symbol=NAMES,
                                 edges=EDGES, root=0, target=4, neg_target=7)


def test_stage_sequences_by_hand():
    tok, ex = ProsQASymbolic(max_nodes=8), graph()
    m = FrontierCoconut(max_latent_stage=4, pad_latent_to_max=True)
    q = tok.question_ids(ex)
    block = lambda k: [tok.bot_id] + [tok.latent_id] * k + [tok.eot_id]
    for stage, node in ((0, 1), (1, 3), (2, 4)):      # the label: the path's node at depth stage + 1
        seq = m.layout(tok, ex, stage)
        assert seq.input_ids == q + block(stage) and seq.n_thoughts == stage
        assert seq.labels == [-100] * (len(q) + stage + 1) + [node]   # at <eot>: read by the position before it
    answer = tok.answer_ids(ex)                        # [A] target eos
    assert m.layout(tok, ex, 3).input_ids == q + block(3) + answer   # the thoughts cover the path: the answer
    assert m.layout(tok, ex, 3).labels == [-100] * (len(q) + 5) + answer
    assert m.layout(tok, ex, 4).input_ids == q + block(4) + answer
    assert m.layout(tok, ex, 5).input_ids == q + block(4) + answer   # final stage: padded to max_latent_stage
    assert m.prompt_ids(tok, ex, 0) == q + block(0) and m.stage(0) == 0


def test_targets_name_the_path_the_shortest_paths_or_the_whole_layer():
    ex = graph()
    assert gold_path(ex) == [0, 1, 3, 4]
    cands = {t: [FrontierCoconut(target=t).candidates(ex, d) for d in (1, 2, 3)] for t in ("path", "shortest",
                                                                                             "frontier")}
    assert cands["path"] == [[1], [3], [4]]
    assert cands["shortest"] == [[1, 2], [3], [4]]
    assert cands["frontier"] == [[1, 2], [3, 5], [4, 6]]
    with pytest.raises(ValueError, match="target must be one of"):
        FrontierCoconut(target="all")
    bad = types.SimpleNamespace(**{**graph().__dict__, "steps": graph().steps[:2]})
    with pytest.raises(ValueError, match="not a shortest path"):
        gold_path(bad)


def test_several_candidates_are_drawn_uniformly():
    """One node per example and epoch, uniform over the set: in expectation the mean
    cross-entropy over the frontier. 6,000 draws: each of two candidates within 3%."""
    tok, ex, m = ProsQASymbolic(max_nodes=8), graph(), FrontierCoconut(target="frontier", max_latent_stage=4)
    rng = random.Random(0)
    counts = Counter(m.layout(tok, ex, 1, rng).labels[-1] for _ in range(6000))
    assert set(counts) == {3, 5} and all(abs(c / 6000 - 0.5) < 0.03 for c in counts.values())
    assert m.layout(tok, ex, 1).labels[-1] == 3        # no rng (a length check): the first candidate


def test_loss_is_read_by_the_position_before_eot():
    """The core's loss on a frontier sequence equals the cross-entropy of the logits of
    the position before <eot> for the label node, computed here from `forward`."""
    tok, ex = ProsQAEdgeTokens(max_nodes=8), graph()
    model = coconut.GPT2(coconut.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=tok.vocab_size,
                                            n_positions=128, dropout=0.0), seed=3)
    spec = tok.thought_spec("continuous")
    for stage, node in ((0, 1), (2, 4)):
        seq = FrontierCoconut(max_latent_stage=4).layout(tok, ex, stage)
        x, y = np.array([seq.input_ids]), np.array([seq.labels])
        model.zero_grad()
        loss = model.loss_and_grad(x, y, thoughts=spec)
        logits = model.forward(x, thoughts=spec)[0, -2].astype(np.float64)
        expected = math.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[node]
        assert loss == pytest.approx(expected, rel=1e-5)


def test_the_method_needs_node_tokens():
    with pytest.raises(ValueError, match="one token per node"):
        FrontierCoconut().check_tokenization(TextTokenization())
    FrontierCoconut().check_tokenization(ProsQASymbolic())
    assert METHODS["coconut_frontier"] is FrontierCoconut


def test_renaming_nodes_renames_the_label_and_a_run_trains(tmp_path):
    """shuffle_nodes renames the label with the graph's nodes, so it stays the same node
    under its new name; a run with renamed nodes trains through every stage."""
    tok, ex = ProsQAEdgeTokens(max_nodes=8), graph()
    perm = [5, 3, 0, 7, 1, 2, 6, 4]
    seq = FrontierCoconut(max_latent_stage=4).layout(tok, ex, 1)
    assert tok.relabel_nodes(seq.labels, perm)[-1] == perm[3]
    cfg = config_from_dict(dict(
        generate={"dataset": "prosqa", "n": 40, "val_n": 6, "seed": 0}, tokenization="prosqa_edge_tokens",
        init="scratch", n_layer=2, n_head=2, n_embd=32, n_positions=256, dropout=0.0, method="coconut_frontier",
        method_options={"target": "frontier"}, epochs_per_stage=1, max_latent_stage=3, pad_latent_to_max=True,
        num_epochs=5, batch_size_training=8, lr=3e-3, max_new_tokens=6, eval_batch_size=8, threads=1,
        recipe={"shuffle_nodes": True}, save_path=str(tmp_path), name="frontier", debug=True),
        source="test.yaml")
    result = train(cfg)
    assert [h["stage"] for h in result.history] == [0, 1, 2, 3, 4]
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    assert result.history[-1]["mean_thoughts"] == 3.0
