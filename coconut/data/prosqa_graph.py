"""ProsQA graphs: the official sentence forms and every graph fact a question rests on.

One module for the generator, the statistics, the symbolic tokenizers and the analyses,
so that all of them read and write the same sentences and walk the graph the same way.

Two levels:
- on children lists (`children[node]` = the nodes it "is a"), for code that builds a
  graph before any example exists: `children_lists`, `distances_from`,
  `reachable_from`, `shortest_paths_between`, `count_shortest_paths`;
- on an example (anything with `idx_to_symbol`, `edges` as [src, dst] "src is a dst"
  pairs, `root`, `target`, `neg_target`): the rest. Distances count edges along
  directed paths; depth d means shortest distance d from the root unless said otherwise.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

Edge = tuple[int, int]


# ----------------------------------------------------------------------------- sentences


def is_person(symbol: str) -> bool:
    """Parentless nodes carry capitalised person names, concepts are lower case."""
    return symbol[:1].isupper()


def edge_sentence(src_symbol: str, dst_symbol: str) -> str:
    """"Tom is a wumpus." from a person, "Every wumpus is a yumpus." from a concept. The
    article is always "a", as in the official files ("Every gerpus is a impus.")."""
    return f"{sentence_subject(src_symbol)}{dst_symbol}."


def edge_sentences(symbols: Sequence[str], edges: Iterable[tuple[int, int]],
                   subjects: Sequence[str] | None = None) -> list[str]:
    """edge_sentence of every (src, dst) edge between `symbols`, each symbol's form
    decided once (the generator writes 12,000 questions an epoch); `subjects`: the
    symbols' sentence_subject, where the caller has them already."""
    subject = subjects if subjects is not None else [sentence_subject(s) for s in symbols]
    return [f"{subject[a]}{symbols[b]}." for a, b in edges]


def sentence_subject(symbol: str) -> str:
    """The start of an edge sentence about `symbol`: "Tom is a ", "Every wumpus is a "."""
    return f"{symbol} is a " if is_person(symbol) else f"Every {symbol} is a "


def question_ending(entity: str, first: str, second: str) -> str:
    return f"Is {entity} a {first} or {second}?"


def answer_sentence(entity: str, concept: str) -> str:
    return f"{entity} is a {concept}."


# ----------------------------------------------------------------------------- children lists


def children_lists(n_nodes: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for src, dst in edges:
        children[src].append(dst)
    return children


def distances_from(children: Sequence[Sequence[int]], start: int) -> dict[int, int]:
    """Breadth-first edge counts from `start` to every node it reaches (start: 0)."""
    dist = {start: 0}
    frontier = [start]
    for node in frontier:
        for child in children[node]:
            if child not in dist:
                dist[child] = dist[node] + 1
                frontier.append(child)
    return dist


def reachable_from(children: Sequence[Sequence[int]], start: int) -> set[int]:
    return set(distances_from(children, start))


def shortest_paths_between(children: Sequence[Sequence[int]], start: int, goal: int) -> list[list[int]]:
    """Every shortest node path start → goal (empty when goal is unreachable), in the
    order the generator draws from: changing it would change every generated data set."""
    dist = distances_from(children, start)
    if goal not in dist:
        return []
    parents_on_level: dict[int, list[int]] = defaultdict(list)
    for node, d in dist.items():
        for child in children[node]:
            if dist.get(child) == d + 1:
                parents_on_level[child].append(node)

    def paths_to(node: int) -> list[list[int]]:
        if node == start:
            return [[start]]
        return [p + [node] for parent in parents_on_level[node] for p in paths_to(parent)]

    return paths_to(goal)


def count_shortest_paths(children: Sequence[Sequence[int]], start: int, goal: int) -> int:
    """Number of shortest paths, counted level by level (no enumeration)."""
    dist = distances_from(children, start)
    if goal not in dist:
        return 0
    ways = defaultdict(int, {start: 1})
    for node in sorted(dist, key=dist.get):
        for child in children[node]:
            if dist.get(child) == dist[node] + 1:
                ways[child] += ways[node]
    return ways[goal]


# ----------------------------------------------------------------------------- examples


def edge_list(example) -> list[Edge]:
    """The example's edges as `(src, dst)` int tuples, in file order, duplicates dropped."""
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
    """Number of nodes: `len(idx_to_symbol)` when present, else 1 + the largest id used."""
    symbols = getattr(example, "idx_to_symbol", None)
    if symbols is not None:
        return len(symbols)
    ids = [v for e in edge_list(example) for v in e]
    for name in ("root", "target", "neg_target"):
        v = getattr(example, name, None)
        if v is not None:
            ids.append(int(v))
    return max(ids) + 1 if ids else 0


def _children(example) -> list[list[int]]:
    edges = edge_list(example)
    n = max([num_nodes(example)] + [max(e) + 1 for e in edges])
    return children_lists(n, edges)


def adjacency(example) -> dict[int, list[int]]:
    """Children of every node (`src -> [dst, ...]` in edge order); every node has a key."""
    return dict(enumerate(_children(example)))


def parents(example) -> dict[int, list[int]]:
    """Parents of every node (`dst -> [src, ...]`); every node has a key."""
    par: dict[int, list[int]] = {v: [] for v in adjacency(example)}
    for s, d in edge_list(example):
        par[d].append(s)
    return par


def _root(example, src: int | None) -> int:
    if src is not None:
        return int(src)
    root = getattr(example, "root", None)
    if root is None:
        raise ValueError("example has no root and no source node was given")
    return int(root)


def distances(example, src: int | None = None) -> dict[int, int]:
    """Shortest distance from `src` (default: the root) to every node reachable from it,
    `src` itself included at distance 0."""
    return distances_from(_children(example), _root(example, src))


def shortest_distance(example, src: int | None, dst: int) -> int | None:
    """Length (in edges) of a shortest path `src -> dst`, or None when unreachable."""
    return distances(example, src).get(int(dst))


def reachable(example, src: int | None = None, max_depth: int | None = None) -> set[int]:
    """Nodes reachable from `src` (default: root) in at most `max_depth` edges (no limit
    when None); `src` itself included."""
    dist = distances(example, src)
    return {v for v, d in dist.items() if max_depth is None or d <= max_depth}


def is_reachable(example, src: int, dst: int) -> bool:
    return int(dst) in distances(example, src)


def _walk_layers(example, src: int, depth: int) -> list[set[int]]:
    """layers[i] = nodes at the end of some directed path of exactly i edges from src."""
    children = _children(example)
    layers = [{src}]
    for _ in range(depth):
        layers.append({v for u in layers[-1] for v in children[u]})
    return layers


def frontier(example, depth: int, src: int | None = None, mode: str = "shortest") -> set[int]:
    """The search frontier at `depth`.

    mode "shortest": nodes whose SHORTEST distance from the root is exactly `depth`, the
    layer a breadth-first search discovers at step `depth`. mode "walk": nodes at the end
    of SOME directed path of exactly `depth` edges. In a DAG a node can be a child and a
    grandchild of the root at once; "walk" keeps it in both layers, "shortest" in the
    first only. `frontier(ex, 0)` is {root} in both modes."""
    start = _root(example, src)
    if depth < 0:
        return set()
    if mode == "shortest":
        return {v for v, d in distances(example, start).items() if d == depth}
    if mode == "walk":
        return _walk_layers(example, start, depth)[depth]
    raise ValueError(f"unknown frontier mode {mode!r} (use 'shortest' or 'walk')")


def frontier_edges(example, depth: int, src: int | None = None, mode: str = "shortest") -> set[Edge]:
    """Edges that take the search from the `depth - 1` frontier to the `depth` frontier:
    "shortest", edges (u, v) with dist(u) = depth - 1 and dist(v) = depth (an edge whose
    head was found earlier is not one); "walk", every edge leaving the `depth - 1` walk
    layer. Empty for depth < 1."""
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
    """All shortest directed paths `src -> dst` as node lists (both ends included),
    sorted. Defaults: root -> target. Empty when unreachable; [[src]] when src == dst."""
    end = int(getattr(example, "target") if dst is None else dst)
    return sorted(shortest_paths_between(_children(example), _root(example, src), end))


def path_edges_of(path: Iterable[int]) -> list[Edge]:
    nodes = list(path)
    return list(zip(nodes[:-1], nodes[1:]))


def optimal_path_edges(example, src: int | None = None, dst: int | None = None) -> set[Edge]:
    """Union of the edges of all shortest root -> target paths."""
    return {e for p in shortest_paths(example, src, dst) for e in path_edges_of(p)}


def optimal_path_nodes(example, src: int | None = None, dst: int | None = None) -> set[int]:
    """Union of the nodes of all shortest root -> target paths (ends included)."""
    return {v for p in shortest_paths(example, src, dst) for v in p}
