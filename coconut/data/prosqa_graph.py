"""ProsQA graphs: the official sentence forms and the path facts a question rests on.

Shared by the generator, the statistics and the symbolic tokenizer, so that all of them
read and write exactly the same sentences.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence


def is_person(symbol: str) -> bool:
    """Parentless nodes carry capitalised person names, concepts are lower case."""
    return symbol[:1].isupper()


def edge_sentence(src_symbol: str, dst_symbol: str) -> str:
    """"Tom is a wumpus." from a person, "Every wumpus is a yumpus." from a concept."""
    if is_person(src_symbol):
        return f"{src_symbol} is a {dst_symbol}."
    return f"Every {src_symbol} is a {dst_symbol}."


def question_ending(entity: str, first: str, second: str) -> str:
    return f"Is {entity} a {first} or {second}?"


def answer_sentence(entity: str, concept: str) -> str:
    return f"{entity} is a {concept}."


def children_lists(n_nodes: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for src, dst in edges:
        children[src].append(dst)
    return children


def distances_from(children: Sequence[Sequence[int]], start: int) -> dict[int, int]:
    """Breadth-first edge counts from `start` to every node it reaches."""
    dist = {start: 0}
    frontier = [start]
    for node in frontier:
        for child in children[node]:
            if child not in dist:
                dist[child] = dist[node] + 1
                frontier.append(child)
    return dist


def reachable(children: Sequence[Sequence[int]], start: int) -> set[int]:
    return set(distances_from(children, start))


def shortest_paths(children: Sequence[Sequence[int]], start: int, goal: int) -> list[list[int]]:
    """Every shortest node path start → goal (empty list when goal is unreachable)."""
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
