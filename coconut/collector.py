"""Python's cycle collector paused around work that builds many small objects and no
cycles: an epoch's fresh questions, their ids and their training sequences. Every pass of
the collector's oldest generation walks each object the training process holds, and the
allocations of that work start such passes over and over (two thirds of the CPU time of
a `prosqa-cpu-thoughts` epoch's data, benchmarks/epoch_data.py). What the work frees, it
frees by reference counts as before; a cycle made meanwhile waits for the next pass.

    with collector_paused():
        examples = generate_prosqa(12000, seed)
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def collector_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
