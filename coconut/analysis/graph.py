"""Graph helpers for ProsQA examples.

An example (any object with the attributes below; duck typing) carries a small DAG:

- ``idx_to_symbol``: the name of every node (node ids are indices into this list);
- ``edges``: ``[src, dst]`` pairs, each meaning "src is a dst";
- ``root``: the node of the question's entity ("Tom");
- ``target`` / ``neg_target``: the correct and the wrong concept of the question.

Distances are numbers of edges along directed paths. Depth ``d`` always means
"shortest distance ``d`` from the root" unless a function says otherwise.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

Edge = tuple[int, int]

__all__ = [
    "Edge",
    "edge_list",
    "edge_set",
    "num_nodes",
    "adjacency",
    "parents",
    "distances",
    "shortest_distance",
    "reachable",
    "is_reachable",
    "frontier",
    "frontier_edges",
    "shortest_paths",
    "path_edges_of",
    "optimal_path_edges",
    "optimal_path_nodes",
]


def edge_list(example) -> list[Edge]:
    """The example's edges as ``(src, dst)`` int tuples, in file order, duplicates dropped."""
    seen: set[Edge] = set()
    out: list[Edge] = []
    for e in getattr(example, "edges", None) or ():
        pair = (int(e[0]), int(e[1]))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def edge_set(example) -> set[Edge]:
    return set(edge_list(example))


def num_nodes(example) -> int:
    """Number of nodes: ``len(idx_to_symbol)`` when present, else 1 + the largest id used."""
    symbols = getattr(example, "idx_to_symbol", None)
    if symbols is not None:
        return len(symbols)
    ids = [v for e in edge_list(example) for v in e]
    for name in ("root", "target", "neg_target"):
        v = getattr(example, name, None)
        if v is not None:
            ids.append(int(v))
    return max(ids) + 1 if ids else 0


def adjacency(example) -> dict[int, list[int]]:
    """Children of every node (``src -> [dst, ...]`` in edge order); every node has a key."""
    adj: dict[int, list[int]] = {v: [] for v in range(num_nodes(example))}
    for s, d in edge_list(example):
        adj.setdefault(s, []).append(d)
        adj.setdefault(d, [])
    return adj


def parents(example) -> dict[int, list[int]]:
    """Parents of every node (``dst -> [src, ...]``); every node has a key."""
    par: dict[int, list[int]] = {v: [] for v in range(num_nodes(example))}
    for s, d in edge_list(example):
        par.setdefault(d, []).append(s)
        par.setdefault(s, [])
    return par


def _root(example, src: int | None) -> int:
    if src is not None:
        return int(src)
    root = getattr(example, "root", None)
    if root is None:
        raise ValueError("example has no root and no source node was given")
    return int(root)


def distances(example, src: int | None = None) -> dict[int, int]:
    """Breadth-first shortest distance from ``src`` (default: the root) to every node
    reachable from it, ``src`` itself included at distance 0."""
    start = _root(example, src)
    adj = adjacency(example)
    dist = {start: 0}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in adj.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def shortest_distance(example, src: int | None, dst: int) -> int | None:
    """Length (in edges) of a shortest path ``src -> dst``, or None when unreachable."""
    return distances(example, src).get(int(dst))


def reachable(example, src: int | None = None, max_depth: int | None = None) -> set[int]:
    """Nodes reachable from ``src`` (default: root) in at most ``max_depth`` edges
    (no limit when None). ``src`` itself is included (distance 0)."""
    dist = distances(example, src)
    if max_depth is None:
        return set(dist)
    return {v for v, d in dist.items() if d <= max_depth}


def is_reachable(example, src: int, dst: int) -> bool:
    return int(dst) in distances(example, src)


def _walk_layers(example, src: int, depth: int) -> list[set[int]]:
    """layers[i] = nodes at the end of some directed path of exactly i edges from src."""
    adj = adjacency(example)
    layers = [{src}]
    for _ in range(depth):
        layers.append({v for u in layers[-1] for v in adj.get(u, ())})
    return layers


def frontier(example, depth: int, src: int | None = None, mode: str = "shortest") -> set[int]:
    """The search frontier at ``depth``.

    ``mode="shortest"`` (default): nodes whose SHORTEST distance from the root is exactly
    ``depth`` -- the new layer a breadth-first search discovers at step ``depth``.
    ``mode="walk"``: nodes at the end of SOME directed path of exactly ``depth`` edges
    from the root. In a DAG a node can be a child and a grandchild of the root at once;
    "walk" keeps it in both layers, "shortest" only in the first.
    ``frontier(ex, 0)`` is ``{root}`` in both modes.
    """
    start = _root(example, src)
    if depth < 0:
        return set()
    if mode == "shortest":
        return {v for v, d in distances(example, start).items() if d == depth}
    if mode == "walk":
        return _walk_layers(example, start, depth)[depth]
    raise ValueError(f"unknown frontier mode {mode!r} (use 'shortest' or 'walk')")


def frontier_edges(example, depth: int, src: int | None = None, mode: str = "shortest") -> set[Edge]:
    """Edges that take the search from the ``depth - 1`` frontier to the ``depth`` frontier.

    ``mode="shortest"``: edges ``(u, v)`` with ``dist(u) == depth - 1`` and
    ``dist(v) == depth`` (the BFS tree-layer edges; an edge whose head was already found
    earlier is not a frontier edge). ``mode="walk"``: every edge leaving a node of the
    ``depth - 1`` walk layer. Empty for ``depth < 1``.
    """
    if depth < 1:
        return set()
    start = _root(example, src)
    edges = edge_list(example)
    if mode == "shortest":
        dist = distances(example, start)
        return {(u, v) for u, v in edges if dist.get(u) == depth - 1 and dist.get(v) == depth}
    if mode == "walk":
        prev = _walk_layers(example, start, depth - 1)[depth - 1]
        return {(u, v) for u, v in edges if u in prev}
    raise ValueError(f"unknown frontier mode {mode!r} (use 'shortest' or 'walk')")


def shortest_paths(example, src: int | None = None, dst: int | None = None) -> list[list[int]]:
    """All shortest directed paths ``src -> dst`` as node lists (both ends included),
    sorted lexicographically. Defaults: root -> target. Empty when unreachable;
    ``[[src]]`` when ``src == dst``."""
    start = _root(example, src)
    end = int(getattr(example, "target") if dst is None else dst)
    dist = distances(example, start)
    if end not in dist:
        return []
    par = parents(example)
    paths: list[list[int]] = []

    # walk backwards from the end, only along edges that lose exactly one unit of distance
    def back(node: int, suffix: list[int]) -> None:
        if node == start:
            paths.append([node] + suffix)
            return
        for p in par.get(node, ()):
            if dist.get(p) == dist[node] - 1:
                back(p, [node] + suffix)

    back(end, [])
    return sorted(paths)


def path_edges_of(path: Iterable[int]) -> list[Edge]:
    nodes = list(path)
    return list(zip(nodes[:-1], nodes[1:]))


def optimal_path_edges(example, src: int | None = None, dst: int | None = None) -> set[Edge]:
    """Union of the edges of all shortest root -> target paths."""
    return {e for p in shortest_paths(example, src, dst) for e in path_edges_of(p)}


def optimal_path_nodes(example, src: int | None = None, dst: int | None = None) -> set[int]:
    """Union of the nodes of all shortest root -> target paths (ends included)."""
    return {v for p in shortest_paths(example, src, dst) for v in p}
