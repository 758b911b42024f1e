"""Statistics of ProsQA example sets, to check a generator against the official file.

Run `python -m coconut.data OFFICIAL_PROSQA.json [N] [SEED]` for the side-by-side table.
"""
from __future__ import annotations

from collections import Counter
from statistics import mean
from typing import Sequence

from coconut.data.example import Example
from coconut.data.prosqa_graph import children_lists, count_shortest_paths, reachable_from

STEP_BUCKETS = (3, 4, 5, 6)


def _first_named_concept(example: Example) -> str:
    # The question ends "Is Tom a A or B?": A is the concept named first.
    ending = example.question.rsplit(" Is ", 1)[-1]
    return ending.split(" a ", 1)[1].split(" or ", 1)[0]


def prosqa_stats(examples: Sequence[Example]) -> dict:
    """Per-graph means (and ranges) of the quantities the paper and the official file
    describe. `steps_share[k]` is the fraction of examples with k steps."""
    if not examples:
        raise ValueError("prosqa_stats: no examples")
    nodes, edges, steps, paths, persons, leaves, mixed, parents = [], [], [], [], [], [], [], []
    root_is_one = correct_first = 0
    for i, ex in enumerate(examples):
        if not ex.has_graph:
            raise ValueError(f"prosqa_stats: example {i} has no ProsQA graph fields")
        n = len(ex.idx_to_symbol)
        children = children_lists(n, ex.edges)
        has_parent = {dst for _, dst in ex.edges}
        nodes.append(n)
        edges.append(len(ex.edges))
        steps.append(len(ex.steps))
        paths.append(count_shortest_paths(children, ex.root, ex.target))
        persons.append(n - len(has_parent))
        leaves.append(sum(1 for c in children if not c))
        # The other family's root is the other parentless node of the pair {0, 1}.
        other_root = 1 - ex.root if ex.root in (0, 1) else None
        if other_root is not None:
            mixed.append(len(reachable_from(children, ex.root) & reachable_from(children, other_root)))
        parents.append(len(ex.edges) / max(1, len(has_parent)))
        root_is_one += ex.root == 1
        correct_first += _first_named_concept(ex) == ex.idx_to_symbol[ex.target]
    step_counts = Counter(steps)
    m = len(examples)
    return {
        "examples": m,
        "nodes_mean": mean(nodes), "nodes_min": min(nodes), "nodes_max": max(nodes),
        "edges_mean": mean(edges), "edges_min": min(edges), "edges_max": max(edges),
        "steps_mean": mean(steps), "steps_min": min(steps), "steps_max": max(steps),
        "steps_share": {k: step_counts.get(k, 0) / m for k in sorted(set(STEP_BUCKETS) | set(step_counts))},
        "shortest_paths_mean": mean(paths),
        "persons_mean": mean(persons), "persons_min": min(persons), "persons_max": max(persons),
        "leaves_mean": mean(leaves),
        "both_families_nodes_mean": mean(mixed) if mixed else float("nan"),
        "parents_per_concept_mean": mean(parents),
        "root_id_one_share": root_is_one / m,
        "correct_first_share": correct_first / m,
    }


def _rows(stats: dict) -> list[tuple[str, str]]:
    def num(key):
        return f"{stats[key]:.2f}"

    def span(key):
        return f"{stats[key + '_mean']:.2f} ({stats[key + '_min']}-{stats[key + '_max']})"

    rows = [
        ("examples", str(stats["examples"])),
        ("nodes mean (min-max)", span("nodes")),
        ("edges mean (min-max)", span("edges")),
        ("steps mean (min-max)", span("steps")),
    ]
    for k in sorted(stats["steps_share"]):
        rows.append((f"  {k} steps %", f"{100 * stats['steps_share'][k]:.1f}"))
    rows += [
        ("shortest paths mean", num("shortest_paths_mean")),
        ("persons mean (min-max)", span("persons")),
        ("leaves mean", num("leaves_mean")),
        ("nodes in both families", num("both_families_nodes_mean")),
        ("parents per concept", num("parents_per_concept_mean")),
        ("root id 1 %", f"{100 * stats['root_id_one_share']:.1f}"),
        ("correct named first %", f"{100 * stats['correct_first_share']:.1f}"),
    ]
    return rows


def compare_prosqa(generated: Sequence[Example], official: Sequence[Example]) -> str:
    """A plain-text table: one row per statistic, generated next to official."""
    gen_rows = _rows(prosqa_stats(generated))
    off_rows = dict(_rows(prosqa_stats(official)))
    # Step buckets may differ between the two sets: show every bucket either one has.
    labels = [label for label, _ in gen_rows] + [l for l in off_rows if l not in dict(gen_rows)]
    gen = dict(gen_rows)
    width = max(len(label) for label in labels)
    lines = [f"{'statistic':<{width}}  {'generated':>18}  {'official':>18}"]
    lines.append("-" * len(lines[0]))
    for label in labels:
        lines.append(f"{label:<{width}}  {gen.get(label, '0.0'):>18}  {off_rows.get(label, '0.0'):>18}")
    return "\n".join(lines)


def print_prosqa_comparison(official_path: str, n: int = 2000, seed: int = 0) -> str:
    """Generate n examples and print the table against the official file at `official_path`."""
    from coconut.data.loaders import load_examples
    from coconut.data.prosqa_generator import generate_prosqa

    table = compare_prosqa(generate_prosqa(n, seed), load_examples(official_path))
    print(table)
    return table

