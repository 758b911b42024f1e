"""Where do continuous thoughts look? Attention mass on the question's edge sentences.

Inputs are produced elsewhere:
- ``attn``: array ``(n_thoughts, T)``; row ``t`` is the attention (already averaged
  over heads and layers, or one head/layer) of the position that computes thought
  ``t`` over the ``T`` positions of the sequence. Row 0 is the ``<bot>`` position, whose
  output is the first thought.
- ``spans``: ``[(start, end, edge), ...]`` token spans (``end`` exclusive) of the edge
  sentences of the question, ``edge = (src, dst)`` node ids (``None`` for a sentence that
  states no edge, e.g. the final "Is Tom a A or B?"). ``sentences.question_edge_spans``
  gives the character spans; a tokenizer's offsets turn them into token spans.

Thought ``t`` is expected to expand the search one layer deeper: its frontier edges are
``prosqa_graph.frontier_edges(example, t + depth_offset)`` (default offset 1: the first thought
expands the root, so its frontier edges are the root's out-edges). Optimal edges are those
on any shortest root -> target path.

Masses are sums of attention weights over token positions, each position counted once
even if spans overlap. The categories overlap (an edge can be a frontier edge and an
optimal one), so besides ``frontier`` and ``optimal`` the result gives a partition of the
sequence (exact when spans do not overlap one another):
``frontier_optimal + frontier_only + optimal_only + other_edges + non_edge_sentences
+ outside == total``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from coconut.data.prosqa_graph import Edge, frontier_edges, optimal_path_edges

__all__ = ["span_masks", "attention_mass", "attention_summary"]

Span = tuple[int, int, "Edge | None"]


def span_masks(spans: Sequence[Span], length: int, edge_groups: dict[str, set]) -> dict[str, np.ndarray]:
    """Boolean token masks of length ``length``: one per named group of edges (the
    positions of spans whose edge is in the group), plus ``"any_edge"`` (all spans with
    an edge) and ``"any_span"`` (all spans)."""
    masks = {name: np.zeros(length, dtype=bool) for name in edge_groups}
    masks["any_edge"] = np.zeros(length, dtype=bool)
    masks["any_span"] = np.zeros(length, dtype=bool)
    for start, end, edge in spans:
        s, e = max(0, int(start)), min(length, int(end))
        if s >= e:
            continue
        masks["any_span"][s:e] = True
        if edge is None:
            continue
        edge = (int(edge[0]), int(edge[1]))
        masks["any_edge"][s:e] = True
        for name, group in edge_groups.items():
            if edge in group:
                masks[name][s:e] = True
    return masks


def attention_mass(attn: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum of each row's weights over the masked positions: shape ``(n_rows,)``."""
    a = np.asarray(attn, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    return a[:, np.asarray(mask, dtype=bool)].sum(axis=1)


def attention_summary(
    attn: np.ndarray,
    spans: Sequence[Span],
    example,
    depth_offset: int = 1,
    mode: str = "shortest",
) -> dict[str, np.ndarray]:
    """Attention mass per thought on frontier edges, optimal-path edges and the rest.

    Returns arrays of shape ``(n_thoughts,)``:
    - ``frontier``: mass on sentences of frontier edges of that thought's depth;
    - ``optimal``: mass on sentences of edges of a shortest root -> target path;
    - ``frontier_optimal``: on edges that are both (the optimal step at that depth);
    - ``frontier_only`` / ``optimal_only``: on one but not the other;
    - ``other_edges``: on edge sentences that are neither;
    - ``non_edge_sentences``: on spans without an edge (e.g. the final question);
    - ``outside``: on positions in no span (markers, earlier thoughts, padding...);
    - ``total``: row sums;
    - ``frontier_per_edge`` / ``optimal_per_edge`` / ``other_per_edge``: mass per
      sentence of the group (mass / number of such sentences; NaN when none), which
      corrects for the groups' very different sizes;
    - ``n_frontier_edges``: how many frontier-edge sentences each thought has.
    """
    a = np.asarray(attn, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError("attn must be (n_thoughts, T)")
    n_thoughts, length = a.shape
    optimal = optimal_path_edges(example)
    span_edges = [None if e is None else (int(e[0]), int(e[1])) for _, _, e in spans]
    edge_sentences = [e for e in span_edges if e is not None]

    keys = ("frontier", "optimal", "frontier_optimal", "frontier_only", "optimal_only",
            "other_edges", "non_edge_sentences", "outside", "total",
            "frontier_per_edge", "optimal_per_edge", "other_per_edge", "n_frontier_edges")
    out = {k: np.zeros(n_thoughts) for k in keys}
    n_opt = sum(e in optimal for e in edge_sentences)
    for t in range(n_thoughts):
        front = frontier_edges(example, t + depth_offset, mode=mode)
        groups = {
            "frontier": front,
            "optimal": optimal,
            "frontier_optimal": front & optimal,
            "frontier_only": front - optimal,
            "optimal_only": optimal - front,
            "either": front | optimal,
        }
        m = span_masks(spans, length, groups)
        row = a[t : t + 1]
        for name in ("frontier", "optimal", "frontier_optimal", "frontier_only", "optimal_only"):
            out[name][t] = attention_mass(row, m[name])[0]
        out["other_edges"][t] = attention_mass(row, m["any_edge"] & ~m["either"])[0]
        out["non_edge_sentences"][t] = attention_mass(row, m["any_span"] & ~m["any_edge"])[0]
        out["outside"][t] = attention_mass(row, ~m["any_span"])[0]
        out["total"][t] = row.sum()
        n_front = sum(e in front for e in edge_sentences)
        n_other = sum(e not in front and e not in optimal for e in edge_sentences)
        out["n_frontier_edges"][t] = n_front
        out["frontier_per_edge"][t] = out["frontier"][t] / n_front if n_front else np.nan
        out["optimal_per_edge"][t] = out["optimal"][t] / n_opt if n_opt else np.nan
        out["other_per_edge"][t] = out["other_edges"][t] / n_other if n_other else np.nan
    return out
