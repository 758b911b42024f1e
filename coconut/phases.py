"""Where a run's wall time goes: seconds per phase, summed over the run.

    phases = PhaseClock()
    with phases("collate"):
        batch = collate(...)
    phases.seconds          # {"collate": 0.41, ...}

The trainer times these phases (the names its metrics lines and `TrainResult.phase_seconds`
use): setup (everything Trainer() does: data, tokenization, length checks, model),
data (an epoch's examples and training sequences, fresh data included), collate (batch
layout), step (the C core's loss and gradients), optimizer (the gradient all-reduce and
AdamW), validation_loss, generation (the epoch-end accuracy), checkpoint (writing it).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

PHASES = ("setup", "data", "collate", "step", "optimizer", "validation_loss", "generation", "checkpoint")


class PhaseClock:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; the phases are {', '.join(PHASES)}")
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def since(self, earlier: dict) -> dict:
        """Seconds per phase spent after the snapshot `earlier` (a copy of `seconds`)."""
        return {k: round(v - earlier.get(k, 0.0), 4) for k, v in self.seconds.items()
                if v - earlier.get(k, 0.0) > 0}
