"""Generated data sets, drawn on several cores at once.

Example i of a generator's stream depends only on (seed, i), so the range
[start, start + n) splits into contiguous parts drawn by forked workers and joined in
order: the result equals, example for example, what one process draws.
"""
from __future__ import annotations

from coconut.data.prontoqa_generator import generate_prontoqa
from coconut.data.prosqa_generator import generate_prosqa
from coconut.forked import map_spans

GENERATORS = {"prosqa": generate_prosqa, "prontoqa": generate_prontoqa}   # by dataset name


def generate(dataset: str, n: int, seed: int, start: int = 0, workers: int = 1) -> list:
    """Examples start .. start + n - 1 of `dataset`'s stream of `seed`, drawn by up to
    `workers` processes (coconut.forked)."""
    if dataset not in GENERATORS:
        raise ValueError(f"unknown generated dataset {dataset!r}; known: {', '.join(sorted(GENERATORS))}")
    draw = GENERATORS[dataset]
    parts = map_spans(lambda lo, hi: draw(hi - lo, seed, start=start + lo), n, workers)
    return [ex for part in parts for ex in part]
