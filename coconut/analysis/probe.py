"""Pure-NumPy helpers for the latent "value" probe (Hao et al. 2024, section 5).

A continuous thought is decoded through the LM head into a distribution over the
vocabulary; the "value" of a graph node is the probability that distribution gives the
node's name. Names are usually several BPE tokens (" lempus" -> " lem" + "pus"); a
single decoded thought is only one next-token distribution, so a node's value is the
probability of the FIRST token of its name (as it appears mid-sentence, i.e. with its
leading space in GPT-2 BPE). Nodes whose names share a first token therefore share a
value; ``shared_first_tokens`` lists such groups so an analysis can report or drop them.
For a symbolic tokenization (one token per node) the value is exact.

The tokenization itself is not needed here: callers pass a mapping node -> token ids.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from coconut.data.prosqa_graph import distances, frontier, num_nodes, optimal_path_nodes

__all__ = [
    "softmax",
    "node_token_map",
    "shared_first_tokens",
    "node_values",
    "frontier_value_summary",
    "aggregate_value_summaries",
    "depth_profile",
    "aggregate_depth_profiles",
]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def node_token_map(example, encode: Callable[[str], Sequence[int]], leading_space: bool = True) -> dict[int, list[int]]:
    """node id -> token ids of its name, from any ``encode(str) -> ids``. With
    ``leading_space`` the name is encoded as " name", the form it has inside a sentence."""
    prefix = " " if leading_space else ""
    return {i: list(encode(prefix + name)) for i, name in enumerate(example.idx_to_symbol)}


def _first_tokens(node_token_ids) -> dict[int, int]:
    items = node_token_ids.items() if isinstance(node_token_ids, Mapping) else enumerate(node_token_ids)
    out: dict[int, int] = {}
    for node, ids in items:
        if isinstance(ids, (int, np.integer)):
            out[int(node)] = int(ids)
        else:
            ids = list(ids)
            if not ids:
                raise ValueError(f"node {node} has no token ids")
            out[int(node)] = int(ids[0])
    return out


def shared_first_tokens(node_token_ids) -> list[list[int]]:
    """Groups (sorted, size >= 2) of nodes whose names start with the same token."""
    groups: dict[int, list[int]] = {}
    for node, tok in _first_tokens(node_token_ids).items():
        groups.setdefault(tok, []).append(node)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _looks_like_probs(x: np.ndarray) -> bool:
    if x.size == 0 or np.any(x < 0) or np.any(x > 1 + 1e-6):
        return False
    return bool(np.allclose(x.sum(axis=-1), 1.0, atol=1e-3))


def node_values(
    thought_dist: np.ndarray,
    node_token_ids: Mapping[int, Sequence[int] | int] | Sequence[Sequence[int] | int],
    kind: str = "auto",
    n_nodes: int | None = None,
) -> np.ndarray:
    """Value of every node under one or more next-token distributions.

    ``thought_dist``: shape ``(..., V)`` -- logits or probabilities over the vocabulary
    (e.g. ``(n_thoughts, V)``). ``kind``: "logits" (softmax over the last axis),
    "probs" (used as is), or "auto" (probabilities when every row is non-negative,
    at most 1 and sums to 1 within 1e-3, logits otherwise).
    ``node_token_ids``: node id -> token ids of its name (or one token id), as a mapping
    or a list indexed by node. Value = probability of the first token.
    Returns shape ``(..., n_nodes)``; ``n_nodes`` defaults to 1 + the largest node id;
    nodes missing from the mapping get NaN.
    """
    x = np.asarray(thought_dist, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("thought_dist must have a vocabulary axis")
    if kind == "auto":
        kind = "probs" if _looks_like_probs(x) else "logits"
    if kind == "logits":
        probs = softmax(x)
    elif kind == "probs":
        probs = x
    else:
        raise ValueError(f"kind must be 'auto', 'logits' or 'probs', not {kind!r}")
    first = _first_tokens(node_token_ids)
    n = (max(first) + 1 if first else 0) if n_nodes is None else int(n_nodes)
    vocab = probs.shape[-1]
    out = np.full(probs.shape[:-1] + (n,), np.nan)
    for node, tok in first.items():
        if not 0 <= tok < vocab:
            raise ValueError(f"token id {tok} of node {node} outside vocabulary of {vocab}")
        if node < n:
            out[..., node] = probs[..., tok]
    return out


def _ranks_desc(values: np.ndarray) -> np.ndarray:
    """1-based rank of every entry by decreasing value; ties share the best rank; NaN
    entries get NaN."""
    ranks = np.full(values.shape, np.nan)
    valid = ~np.isnan(values)
    v = values[valid]
    ranks[valid] = 1 + np.sum(v[None, :] > v[:, None], axis=1)
    return ranks


def _mean(values: np.ndarray, nodes) -> float:
    idx = sorted(nodes)
    if not idx:
        return float("nan")
    sel = values[idx]
    sel = sel[~np.isnan(sel)]
    return float(sel.mean()) if sel.size else float("nan")


def frontier_value_summary(values_per_thought: np.ndarray, example, mode: str = "shortest",
                           depth_offset: int = 1) -> dict[int, dict]:
    """Per-thought comparison of frontier nodes with the rest.

    ``values_per_thought``: ``(n_thoughts, n_nodes)`` node values (see ``node_values``).
    Thought ``t`` (0-based) is compared with the frontier at depth ``t + depth_offset``.
    With the default 1 the first thought should hold the root's children, the second the
    next layer, and so on; with 0, the layer the search has reached (the first thought
    the root), which is what a thought trained to name the next step's first node holds
    (recipe option predict_past_eot). ``mode`` as in ``prosqa_graph.frontier``: "shortest" =
    shortest distance exactly that depth; "walk" = reachable by a path of exactly that
    many edges.

    Returns ``{t: stats}`` with, for each thought:
    - ``depth``: ``t + depth_offset``; ``frontier``: sorted frontier node ids;
    - ``frontier_mean``: mean value of frontier nodes;
    - ``rest_mean``: mean value of all other nodes (root included);
    - ``reachable_mean``: mean value of the nodes within ``depth`` steps of the root
      (root excluded) -- the paper's "reachable within that many steps";
    - ``unreachable_mean``: mean value of nodes the root cannot reach at all;
    - ``optimal_mean``: mean value of frontier nodes on a shortest root -> target path;
    - ``off_path_mean``: mean value of the other frontier nodes (those a search holds
      beside the path: the breadth-first signature where a thought is trained toward
      the path);
    - ``frontier_ranks``: 1-based ranks of the frontier nodes among all nodes by
      decreasing value (sorted); ``frontier_mean_rank``: their mean;
    - ``precision_at_frontier``: fraction of the ``|frontier|`` highest-valued nodes
      that are frontier nodes (NaN when the frontier is empty).
    NaN marks an empty group.
    """
    vals = np.asarray(values_per_thought, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[None, :]
    if vals.ndim != 2:
        raise ValueError("values_per_thought must be (n_thoughts, n_nodes)")
    n = vals.shape[1]
    if n < num_nodes(example):
        raise ValueError(f"{n} values per thought but the example has {num_nodes(example)} nodes")
    root = int(example.root)
    dist = distances(example)
    all_nodes = set(range(n))
    unreachable = all_nodes - set(dist)
    optimal = optimal_path_nodes(example)
    out: dict[int, dict] = {}
    for t in range(vals.shape[0]):
        depth = t + depth_offset
        v = vals[t]
        front = frontier(example, depth, mode=mode)
        within = {u for u, d in dist.items() if 1 <= d <= depth}
        ranks = _ranks_desc(v)
        front_ranks = sorted(float(ranks[u]) for u in front if not np.isnan(ranks[u]))
        if front:
            order = [u for u in np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable")]
            top = set(int(u) for u in order[: len(front)])
            precision = len(top & front) / len(front)
        else:
            precision = float("nan")
        out[t] = {
            "depth": depth,
            "frontier": sorted(front),
            "frontier_mean": _mean(v, front),
            "rest_mean": _mean(v, all_nodes - front),
            "reachable_mean": _mean(v, within),
            "unreachable_mean": _mean(v, unreachable),
            "optimal_mean": _mean(v, front & optimal),
            "off_path_mean": _mean(v, front - optimal),
            "frontier_ranks": front_ranks,
            "frontier_mean_rank": float(np.mean(front_ranks)) if front_ranks else float("nan"),
            "precision_at_frontier": precision,
        }
    return out


def aggregate_value_summaries(summaries: Sequence[dict[int, dict]]) -> dict[int, dict[str, float]]:
    """Average the scalar statistics of several ``frontier_value_summary`` results per
    thought index, ignoring NaN; adds ``n`` (summaries that have that thought)."""
    keys = ("frontier_mean", "rest_mean", "reachable_mean", "unreachable_mean", "optimal_mean", "off_path_mean",
            "frontier_mean_rank", "precision_at_frontier")
    out: dict[int, dict[str, float]] = {}
    thoughts = sorted({t for s in summaries for t in s})
    for t in thoughts:
        rows = [s[t] for s in summaries if t in s]
        agg: dict[str, float] = {"n": float(len(rows))}
        for k in keys:
            xs = np.array([r[k] for r in rows], dtype=np.float64)
            xs = xs[~np.isnan(xs)]
            agg[k] = float(xs.mean()) if xs.size else float("nan")
        out[t] = agg
    return out


def depth_profile(values_per_thought: np.ndarray, example, max_depth: int = 6) -> dict[str, np.ndarray]:
    """Which layer of the search each thought holds, without assuming one.

    ``frontier_value_summary`` asks whether thought ``t`` holds depth ``t + 1``; this
    reports every depth, so a thought that holds the node already reached (depth ``t``),
    the root, or a layer further on shows as such. Returns, for ``values_per_thought``
    of shape ``(n_thoughts, n_nodes)``:
    - ``by_depth``: ``(n_thoughts, max_depth + 1)``, the mean value of the nodes at
      shortest distance ``d`` from the root (column 0 is the root);
    - ``on_path``: the same over the nodes at distance ``d`` on a shortest root -> target
      path;
    - ``unreachable``: ``(n_thoughts,)``, the mean value of nodes the root cannot reach.
    NaN marks a depth with no node.
    """
    vals = np.asarray(values_per_thought, dtype=np.float64)
    if vals.ndim != 2:
        raise ValueError("values_per_thought must be (n_thoughts, n_nodes)")
    if vals.shape[1] < num_nodes(example):
        raise ValueError(f"{vals.shape[1]} values per thought but the example has {num_nodes(example)} nodes")
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    dist = distances(example)
    optimal = optimal_path_nodes(example)
    layers = [{u for u, d in dist.items() if d == depth} for depth in range(max_depth + 1)]
    unreachable = set(range(vals.shape[1])) - set(dist)
    return {
        "by_depth": np.array([[_mean(v, layer) for layer in layers] for v in vals]),
        "on_path": np.array([[_mean(v, layer & optimal) for layer in layers] for v in vals]),
        "unreachable": np.array([_mean(v, unreachable) for v in vals]),
    }


def aggregate_depth_profiles(profiles: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mean of several ``depth_profile`` results, entry by entry, ignoring NaN (all
    must have the same number of thoughts and depths)."""
    if not profiles:
        raise ValueError("aggregate_depth_profiles: no profiles")
    out = {}
    for key in ("by_depth", "on_path", "unreachable"):
        stacked = np.stack([p[key] for p in profiles])
        seen = ~np.isnan(stacked)
        total = np.where(seen, stacked, 0.0).sum(axis=0)
        count = seen.sum(axis=0)
        out[key] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out
