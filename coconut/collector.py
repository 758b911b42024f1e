"""Python's cycle collector kept off an epoch's data: its fresh questions, their ids and
their training sequences, many small objects and no cycles. Every pass of the
collector's oldest generation walks each object the process holds, and building that
data starts such passes over and over (half the CPU time of a `prosqa-cpu-thoughts`
epoch's data); once built, the data lives until the next epoch's replaces it, and the
first pass after it would walk it all once more. What is freed is freed by reference
counts as before; only cycles wait.

    with collector_paused():              # while the questions are drawn
        examples = generate_prosqa(12000, seed)

    with long_lived_frozen():             # a training run: what each epoch's data phase
        ...                               # built is left out of later passes
            with collector_paused(freeze=True):
                examples = ...
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

_freezing = False   # inside a long_lived_frozen that will give back what is frozen


@contextmanager
def collector_paused(freeze: bool = False):
    """freeze: then move everything alive out of later passes (gc.freeze), for a block
    that builds what lives long; only inside long_lived_frozen, which gives it back
    (elsewhere nothing is frozen)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze and _freezing:
            gc.freeze()
        if was_enabled:
            gc.enable()


@contextmanager
def long_lived_frozen():
    """Lets collector_paused(freeze=True) freeze inside it, and at the end puts what was
    frozen back in the collector's sight (a cycle among it that became garbage is then
    collected). A process that froze objects of its own keeps them frozen: inside it,
    nothing more is frozen or given back."""
    global _freezing
    if _freezing or gc.get_freeze_count():
        yield
        return
    _freezing = True
    try:
        yield
    finally:
        _freezing = False
        gc.unfreeze()
