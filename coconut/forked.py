"""Pure-Python work split over forked processes: contiguous spans of range(n), each done
by one worker, the results in span order. Drawing or encoding thousands of examples
would otherwise hold one core while the others wait.

    parts = map_spans(lambda lo, hi: work(items[lo:hi]), len(items), workers=2)

The task runs in children forked from this process, so it sees everything this process
holds without pickling it (a closure is fine); only its results come back pickled. It
must be pure: what a child changes besides its result is lost. Where fork is missing,
or the work is too small to pay for a worker, everything runs here.
"""
from __future__ import annotations

import multiprocessing
import os

_TASK = None   # the task of the pool being run; a forked child inherits it

# below this many items (examples drawn or encoded) a worker's start-up and the copy
# back cost more than they save
MIN_PER_WORKER = 500


def _run(span):
    return _TASK(*span)


def map_spans(task, n: int, workers: int) -> list:
    global _TASK
    workers = max(1, min(workers, n // MIN_PER_WORKER, os.cpu_count() or 1))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [task(0, n)]
    bounds = [n * k // workers for k in range(workers + 1)]
    _TASK = task
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_run, list(zip(bounds, bounds[1:])))
    finally:
        _TASK = None


class Background:
    """`task()` running in one forked child while this process goes on; `result()` waits
    for it and returns what it returned. Where fork is missing, `result()` runs the task
    then. The child is a pool worker: its task must not fork workers of its own."""

    def __init__(self, task):
        global _TASK
        self._task, self._pool, self._pending = task, None, None
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        _TASK = task   # the worker is forked now, and inherits it
        try:
            self._pool = multiprocessing.get_context("fork").Pool(1)
        finally:
            _TASK = None
        self._pending = self._pool.apply_async(_run, ((),))

    def result(self):
        if self._pool is None:
            return self._task()
        try:
            return self._pending.get()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs (the result is then lost)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
