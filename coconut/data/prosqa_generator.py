"""A ProsQA generator following the paper's construction (Hao et al. 2024, appendix A.2).

A DAG grows node by node from two parentless roots, node 0 and node 1. Each new node draws
a Poisson number of parents among the existing nodes, with weights that favour deep
nodes so that reasoning paths get long; a node drawing no parent is a person. A node's
label is the bitwise OR of "descendant of node 0" (1) and "descendant of node 1" (2);
with probability 0.4 a new node may only take parents from node 0's own family, with
0.4 only from node 1's, which keeps the two families apart. The root whose family
reaches deeper becomes the question's entity; the correct concept is its farthest own
leaf, the wrong one a random own leaf of the other family.

The settings below were tuned so that 2000 examples match the official validation file
(see `coconut.data.stats.print_prosqa_comparison`).
"""
from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect
from itertools import accumulate
from dataclasses import dataclass
from typing import Sequence

from coconut import _C
from coconut.collector import collector_paused
from coconut.data.example import Example, ProsQALayout
from coconut.data.name_pools import CONCEPT_NAMES, PERSON_NAMES
from coconut.data.prosqa_graph import (
    answer_sentence,
    children_lists,
    distances_from,
    edge_sentences,
    question_ending,
    sentence_subject,
    shortest_paths_between,
)

ENTITY_LABEL = 1   # descendant of node 0
OTHER_LABEL = 2    # descendant of node 1
MAX_TRIES = 100_000   # graphs drawn for one question before its settings are given up on


@dataclass(frozen=True)
class ProsQASettings:
    grown_nodes: int = 28          # nodes grown; parentless nodes nobody links to are then dropped
    mean_parents: float = 1.5      # Poisson mean of a new node's number of parents
    # Chance a new node may only take parents of node 0's own family (so it cannot
    # descend from node 1), and the same for node 1's. The paper says about 0.35; 0.4
    # brings the count of nodes in both families down to the official file's (~1.3).
    p_only_entity_family: float = 0.4
    p_only_other_family: float = 0.4
    depth_weight: float = 1.5      # parent weight = depth_weight * depth + 1 (depth: edges from a parentless node)
    min_steps: int = 3             # shorter answers are too easy ("no shortcut")
    max_steps: int = 6
    p_root_id_one: float = 0.65    # the official files number the entity 1 this often
    # Beyond the paper's construction, for splits unlike the official data
    # (coconut.data.ood); the defaults leave every draw of the stream as it was.
    max_parents: int | None = None   # at most this many parents per node (1: every graph a forest)
    min_nodes: int = 0               # keep only graphs with this many nodes or more, ...
    max_nodes: int | None = None     # ... at most this many,
    min_edges: int = 0               # ... and this many edges or more


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _weighted_sample(rng: random.Random, items: list[int], weights: list[float], k: int) -> list[int]:
    """k distinct items, drawn one at a time with probability proportional to weight."""
    items, weights, chosen = list(items), list(weights), []
    for _ in range(min(k, len(items))):
        # what rng.choices(range(len(items)), weights=weights)[0] draws, float for float,
        # without its per-call overhead (this is the generator's innermost loop)
        cumulative = list(accumulate(weights))
        pick = bisect(cumulative, rng.random() * (cumulative[-1] + 0.0), 0, len(cumulative) - 1)
        chosen.append(items.pop(pick))
        weights.pop(pick)
    return chosen


@dataclass
class _Graph:
    parents: list[list[int]]   # in drawing order, as the official edge lists keep them
    labels: list[int]


def _grow_graph(rng: random.Random, s: ProsQASettings) -> _Graph:
    parents: list[list[int]] = [[], []]
    labels = [ENTITY_LABEL, OTHER_LABEL]
    depth = [0, 0]
    for _ in range(2, s.grown_nodes):
        n_parents = _poisson(rng, s.mean_parents)
        if s.max_parents is not None:
            n_parents = min(n_parents, s.max_parents)
        draw = rng.random()
        # Restricted draws take only single-family nodes: allowing parentless strays
        # here gives twice the official number of people with children.
        if draw < s.p_only_entity_family:
            candidates = [i for i, lab in enumerate(labels) if lab == ENTITY_LABEL]
        elif draw < s.p_only_entity_family + s.p_only_other_family:
            candidates = [i for i, lab in enumerate(labels) if lab == OTHER_LABEL]
        else:
            candidates = list(range(len(labels)))
        weights = [s.depth_weight * depth[c] + 1 for c in candidates]
        chosen = _weighted_sample(rng, candidates, weights, n_parents)
        label = 0
        for p in chosen:
            label |= labels[p]
        parents.append(chosen)
        labels.append(label)
        depth.append(1 + min((depth[p] for p in chosen), default=-1))
    return _Graph(parents, labels)


def _drop_unused_people(graph: _Graph) -> _Graph:
    """Parentless nodes without children appear in no sentence: remove and renumber."""
    has_child = {p for ps in graph.parents for p in ps}
    keep = [i for i, ps in enumerate(graph.parents) if ps or i in has_child or i < 2]
    new_id = {old: new for new, old in enumerate(keep)}
    return _Graph([[new_id[p] for p in graph.parents[i]] for i in keep], [graph.labels[i] for i in keep])


@dataclass(frozen=True)
class _Draw:
    """What one question's draws decide, before any sentence is written: node i is named
    `names[symbols[i]]` (persons' pool first, then the concepts'), the edge sentences
    appear in `order`, and `path` is the chosen shortest root -> target path."""
    symbols: list[int]
    edges: list[tuple[int, int]]
    order: list[int]
    options_swapped: bool
    path: list[int]
    root: int
    target: int
    neg_target: int


def _try_draw(rng: random.Random, s: ProsQASettings, n_persons: int, n_concepts: int) -> _Draw | None:
    graph = _drop_unused_people(_grow_graph(rng, s))
    n = len(graph.labels)
    edges = [(p, child) for child, ps in enumerate(graph.parents) for p in ps]
    if n < s.min_nodes or (s.max_nodes is not None and n > s.max_nodes) or len(edges) < s.min_edges:
        return None
    children = children_lists(n, edges)
    leaves = [i for i in range(n) if not children[i]]
    # Each root's own leaves (reachable from it only) and their distances from it.
    own_leaves, dists = [], []
    for root, label in ((0, ENTITY_LABEL), (1, OTHER_LABEL)):
        dists.append(distances_from(children, root))
        own_leaves.append([i for i in leaves if graph.labels[i] == label])
    if not own_leaves[0] or not own_leaves[1]:
        return None
    depths = [max(d[i] for i in own) for d, own in zip(dists, own_leaves)]
    # The question asks about the family with the deeper leaf: in the official file the
    # entity's answer is never closer than the deepest leaf of the other family.
    entity = 0 if depths[0] > depths[1] else 1 if depths[1] > depths[0] else rng.randrange(2)
    other = 1 - entity
    if not s.min_steps <= depths[entity] <= s.max_steps:
        return None
    target = rng.choice([i for i in own_leaves[entity] if dists[entity][i] == depths[entity]])
    neg_target = rng.choice(own_leaves[other])
    # The official files number the entity 1 about two times in three, 0 otherwise.
    root = 1 if rng.random() < s.p_root_id_one else 0
    if root != entity:
        swap = {0: 1, 1: 0}
        edges = [(swap.get(a, a), b) for a, b in edges]  # targets are leaves, never 0 or 1

    children = children_lists(n, edges)
    has_parent = {b for _, b in edges}
    parentless = [i for i in range(n) if i not in has_parent]
    if len(parentless) > n_persons or n - len(parentless) > n_concepts:
        raise ValueError(f"generate_prosqa: name pools too small for a graph of {n} nodes")
    # random.sample draws the same positions whatever the pool holds, so the names are
    # drawn as positions: persons' first, then the concepts' after them
    symbols = [0] * n
    for node, k in zip(parentless, rng.sample(range(n_persons), len(parentless))):
        symbols[node] = k
    named_concepts = [i for i in range(n) if i not in parentless]
    for node, k in zip(named_concepts, rng.sample(range(n_concepts), len(named_concepts))):
        symbols[node] = n_persons + k
    order = list(range(len(edges)))   # the sentences' shuffle, drawn on their positions
    rng.shuffle(order)
    options = [0, 1]                  # [target, neg_target], shuffled
    rng.shuffle(options)
    path = rng.choice(shortest_paths_between(children, root, target))
    return _Draw(symbols, edges, order, options[0] == 1, path, root, target, neg_target)


def _example(draw: _Draw, names: Sequence[str], subjects: Sequence[str]) -> Example:
    """The question written from its draw; `subjects[k]` is names[k]'s sentence_subject."""
    symbols = [names[k] for k in draw.symbols]
    sentences = edge_sentences(symbols, draw.edges, [subjects[k] for k in draw.symbols])
    options = (draw.target, draw.neg_target)[::-1 if draw.options_swapped else 1]
    root, path = draw.root, draw.path
    sentence_of = dict(zip(draw.edges, sentences))   # the steps are edges of the question
    question = " ".join([sentences[k] for k in draw.order]
                        + [question_ending(symbols[root], *(symbols[o] for o in options))])
    steps = [sentence_of[edge] for edge in zip(path, path[1:])]
    layout = ProsQALayout([draw.edges[k] for k in draw.order], options, path, question, tuple(steps),
                          tuple(symbols))
    return Example(
        question=question,
        steps=steps,
        answer=answer_sentence(symbols[root], symbols[draw.target]),
        idx_to_symbol=symbols,
        edges=draw.edges,
        root=root,
        target=draw.target,
        neg_target=draw.neg_target,
        layout=layout,
    )


def _seed(seed: int, i: int) -> str:
    return f"prosqa/{seed}/{i}"


def _python_draws(indices: range, seed: int, s: ProsQASettings, n_persons: int, n_concepts: int) -> list[_Draw]:
    """The generator's definition, draw by draw (the C core's `prosqa_draws` repeats it)."""
    draws = []
    for i in indices:
        rng = random.Random(_seed(seed, i))
        for _ in range(MAX_TRIES):   # rejection sampling: redraw until the graph qualifies
            draw = _try_draw(rng, s, n_persons, n_concepts)
            if draw is not None:
                break
        else:
            raise ValueError(f"generate_prosqa: no graph qualified in {MAX_TRIES} draws: the settings' "
                             "node and edge bounds may exclude every graph")
        draws.append(draw)
    return draws


def _c_draws(indices: range, seed: int, s: ProsQASettings, n_persons: int, n_concepts: int) -> list[_Draw]:
    """The same draws from the C core: CPython's random stream repeated in C (random.Random
    seeds a string with its bytes followed by their SHA-512)."""
    seeds = []
    for i in indices:
        text = _seed(seed, i).encode()
        seeds.append(text + hashlib.sha512(text).digest())
    def bound(v):   # a C int that compares as v does with a graph's counts; None: no bound
        return 2**31 - 1 if v is None else max(-2**31, min(v, 2**31 - 1))

    settings = (s.grown_nodes, s.mean_parents, s.p_only_entity_family, s.p_only_other_family, s.depth_weight,
                s.min_steps, s.max_steps, s.p_root_id_one, bound(s.max_parents), bound(s.min_nodes),
                bound(s.max_nodes), bound(s.min_edges), n_persons, n_concepts)
    return [_Draw(*d) for d in _C.prosqa_draws(seeds, settings)]


def generate_prosqa(
    n: int,
    seed: int,
    settings: ProsQASettings = ProsQASettings(),
    person_names: Sequence[str] = PERSON_NAMES,
    concept_names: Sequence[str] = CONCEPT_NAMES,
    start: int = 0,
    engine: str = "c",
) -> list[Example]:
    """Examples start .. start + n - 1 of the ProsQA stream of `seed`, deterministic per
    (seed, settings, name pools). Example i only depends on (seed, i), so a shorter list
    is a prefix of a longer one, and a later part can be drawn without the earlier.
    engine "python" draws with Python's random module, "c" the same numbers in the C core
    (12,000 questions in 0.5 s instead of 2.7, sentences included: benchmarks/epoch_data.py);
    graphs of more than 1024 grown nodes draw in Python."""
    if engine not in ("c", "python"):
        raise ValueError(f"generate_prosqa: engine must be 'c' or 'python', got {engine!r}")
    if not 1 <= settings.min_steps <= settings.max_steps:   # a question needs a path to its answer
        raise ValueError(f"generate_prosqa: need 1 <= min_steps <= max_steps, got {settings.min_steps}, "
                         f"{settings.max_steps}")
    if n < 0 or start < 0:
        raise ValueError(f"generate_prosqa: n and start must be >= 0, got n={n}, start={start}")
    # Sentence forms are chosen by capitalisation (persons "Tom is a X.", concepts "Every X ...").
    if not all(name[:1].isupper() for name in person_names) or len(set(person_names)) != len(person_names):
        raise ValueError("generate_prosqa: person names must be distinct and capitalised")
    if not all(name[:1].islower() for name in concept_names) or len(set(concept_names)) != len(concept_names):
        raise ValueError("generate_prosqa: concept names must be distinct and lower case")
    indices = range(start, start + n)
    sizes = (len(person_names), len(concept_names))
    in_c = engine == "c" and settings.grown_nodes <= _C.PROSQA_MAX_GROWN_NODES
    names = list(person_names) + list(concept_names)
    subjects = [sentence_subject(name) for name in names]
    with collector_paused():
        draws = (_c_draws if in_c else _python_draws)(indices, seed, settings, *sizes)
        return [_example(d, names, subjects) for d in draws]
