"""The paper's six classes of ProsQA reasoning paths (Hao et al. 2024, section 5).

Definitions used here, applied in this order to the text a model generated after
``n_thoughts = k`` continuous thoughts (see ``sentences.parse_output``). Let ``L`` be the
length (in edges) of a shortest root -> target path, ``dist`` the shortest distance from
the root, and ``w_0 -> w_1 -> ... -> w_m`` the written path (the sentences before '#').

1. No path sentence written (only an answer, or nothing): ``"correct_label"`` when the
   answer is correct under the reference scoring rule (text after the last '#', commas
   removed, stripped, equal to the gold answer), else ``"incorrect_label"``.
2. ``"hallucination"`` when the written path
   - has a sentence that is not an edge sentence or names an unknown symbol, or
   - states an edge that is not in the graph, or
   - is disconnected: consecutive sentences do not chain (``dst`` of one is not the
     ``src`` of the next), or its first node cannot be reached from the root within the
     ``k`` latent steps (``dist(w_0)`` is undefined or larger than ``k``; with ``k = 0``
     the path must start at the root itself, so a valid path from another person is
     disconnected from the question).
3. ``"wrong_target"``: a valid, connected path whose last node ``w_m`` is not the target
   (the negative target, an intermediate node, any other node).
4. ``"correct_path"``: a valid, connected path ending at the target that can be completed
   into a SHORTEST root -> target path by prepending a shortest root -> ``w_0`` path of
   at most ``k`` edges (the steps done in latent space), i.e. ``dist(w_0) + m == L``.
   Equivalently: the written nodes are a suffix ``p[j:]`` of some shortest path ``p``
   with ``j <= k``. With ``k = 0`` this is "the path is one of the shortest paths"; with
   ``k`` thoughts the expected form is ``p[k:]``; a model that re-states some latent
   steps in words (``j < k``) still counts as correct, one that skips more steps than
   it has thoughts (``j > k``) is disconnected (rule 2).
5. ``"longer_path"``: a valid, connected path ending at the target with
   ``dist(w_0) + m > L``.

The path classes 2-5 are decided by the written path alone; the answer line only
matters when no path is written (rule 1). ``Classification.answer_correct`` reports the
answer's correctness in every case. Only the text before the first '#' is read as the
path, so an answer sentence written without "###" ("Tom is a lempus.") is read as a path
sentence (here a non-existent edge: hallucination).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable, Sequence

from coconut.data.prosqa_graph import distances, edge_set, shortest_distance
from .sentences import ParsedOutput, parse_output

__all__ = [
    "PATH_CLASSES",
    "Classification",
    "classify",
    "classify_detailed",
    "class_counts",
    "class_fractions",
]

PATH_CLASSES = (
    "correct_path",
    "longer_path",
    "hallucination",
    "wrong_target",
    "correct_label",
    "incorrect_label",
)


@dataclass
class Classification:
    label: str                   # one of PATH_CLASSES
    reason: str                  # short human-readable why
    parsed: ParsedOutput
    answer_correct: bool
    path_nodes: list[int] | None = None   # written nodes when the path chains
    start_depth: int | None = None        # dist(root, w_0) when reachable


def classify_detailed(example, generated_text: str, n_thoughts: int = 0) -> Classification:
    """Classify ``generated_text`` (see the module docstring for the exact rules)."""
    k = int(n_thoughts)
    if k < 0:
        raise ValueError("n_thoughts must be >= 0")
    parsed = parse_output(generated_text, example)
    ok = parsed.answer_correct

    def result(label: str, reason: str, nodes=None, depth=None) -> Classification:
        return Classification(label, reason, parsed, ok, nodes, depth)

    if not parsed.has_path:
        return result("correct_label" if ok else "incorrect_label", "no path written")

    for sent, edge in zip(parsed.sentences, parsed.path_edges):
        if edge is None:
            return result("hallucination", f"unreadable sentence or unknown symbol: {sent!r}")
    graph_edges = edge_set(example)
    for sent, edge in zip(parsed.sentences, parsed.path_edges):
        if edge not in graph_edges:
            return result("hallucination", f"edge not in the graph: {sent!r}")

    nodes = parsed.path_nodes()
    if nodes is None:
        return result("hallucination", "consecutive sentences do not chain")

    dist = distances(example)
    start_depth = dist.get(nodes[0])
    if start_depth is None:
        return result("hallucination", "path starts at a node the root cannot reach", nodes)
    if start_depth > k:
        return result(
            "hallucination",
            f"path starts at depth {start_depth} but only {k} latent step(s) precede it",
            nodes,
            start_depth,
        )

    target = int(example.target)
    if nodes[-1] != target:
        return result("wrong_target", f"path ends at node {nodes[-1]}, not the target", nodes, start_depth)

    best = shortest_distance(example, None, target)
    total = start_depth + len(nodes) - 1
    if best is not None and total == best:
        return result("correct_path", "completes into a shortest path", nodes, start_depth)
    return result("longer_path", f"completed length {total} > shortest {best}", nodes, start_depth)


def classify(example, generated_text: str, n_thoughts: int = 0) -> str:
    """One of ``PATH_CLASSES`` for the text generated after ``n_thoughts`` thoughts."""
    return classify_detailed(example, generated_text, n_thoughts).label


def class_counts(
    examples: Iterable, texts: Iterable[str], n_thoughts: int | Sequence[int] = 0
) -> dict[str, int]:
    """Number of examples in each class (all six keys present). ``n_thoughts`` is one
    number for all examples or one per example."""
    examples = list(examples)
    texts = list(texts)
    if len(examples) != len(texts):
        raise ValueError(f"{len(examples)} examples but {len(texts)} texts")
    if isinstance(n_thoughts, numbers.Integral):
        ks = [n_thoughts] * len(examples)
    else:
        ks = [int(k) for k in n_thoughts]
        if len(ks) != len(examples):
            raise ValueError(f"{len(examples)} examples but {len(ks)} thought counts")
    counts = {c: 0 for c in PATH_CLASSES}
    for ex, text, k in zip(examples, texts, ks):
        counts[classify(ex, text, k)] += 1
    return counts


def class_fractions(counts: dict[str, int]) -> dict[str, float]:
    """Counts divided by their total (all zeros when there is nothing)."""
    total = sum(counts.values())
    return {c: (counts.get(c, 0) / total if total else 0.0) for c in PATH_CLASSES}
