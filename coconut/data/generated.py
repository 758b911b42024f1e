"""Generated data sets, drawn on several cores at once.

Example i of a generator's stream depends only on (seed, i), so the range
[start, start + n) splits into contiguous parts drawn by worker processes and joined in
order: the result equals, example for example, what one process draws. Drawing is pure
Python and would otherwise hold one core while the others wait (generating a fresh
ProsQA epoch of 12,000 questions takes about 15 s on one core).
"""
from __future__ import annotations

import multiprocessing
import os

from coconut.data.prontoqa_generator import generate_prontoqa
from coconut.data.prosqa_generator import generate_prosqa

GENERATORS = {"prosqa": generate_prosqa, "prontoqa": generate_prontoqa}   # by dataset name

# below this many examples a worker's start-up and the copy back cost more than they save
MIN_PER_WORKER = 500


def _draw(args):
    dataset, n, seed, start = args
    return GENERATORS[dataset](n, seed, start=start)


def generate(dataset: str, n: int, seed: int, start: int = 0, workers: int = 1) -> list:
    """Examples start .. start + n - 1 of `dataset`'s stream of `seed`, drawn by up to
    `workers` processes (forked: POSIX only; elsewhere, or for few examples, in this one)."""
    if dataset not in GENERATORS:
        raise ValueError(f"unknown generated dataset {dataset!r}; known: {', '.join(sorted(GENERATORS))}")
    workers = max(1, min(workers, n // MIN_PER_WORKER, os.cpu_count() or 1))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return GENERATORS[dataset](n, seed, start=start)
    bounds = [start + n * k // workers for k in range(workers + 1)]
    parts = [(dataset, hi - lo, seed, lo) for lo, hi in zip(bounds, bounds[1:])]
    # fork: the workers need nothing but the generator code already loaded here
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return [ex for part in pool.map(_draw, parts) for ex in part]
