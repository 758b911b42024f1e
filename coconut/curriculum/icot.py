"""iCoT: stepwise internalisation of the chain of thought (Deng et al. 2024).

The CoT is the concatenation of the step pieces (`step + "\\n"` each). At epoch e the
first e·tokens_removed_per_epoch CoT tokens are removed (all of them once that exceeds
the CoT), until only `"### answer" eos` follows the question. The original schedules
the removal within an epoch batch by batch; here it moves once per epoch, which is
what the Coconut paper describes. Options kept from the original:

- removal_smoothing_lambda λ: each example removes o extra tokens, o drawn with
  P(o) ∝ exp(-λ·o) over o = 0..99 (the tail mass put on 99); ∞ turns it off;
- remove_all_when_remove_beyond: once the schedule reaches this many tokens, remove
  the whole CoT.

The optimizer is reset at each removal, i.e. whenever the scheduled count changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.method import Method, random_unit
from coconut.curriculum.sequence import TrainingSequence, steps_from

SMOOTHING_SUPPORT = 100


@dataclass
class ICoT(Method):
    tokens_removed_per_epoch: int = 8
    removal_smoothing_lambda: float = math.inf
    remove_all_when_remove_beyond: float = math.inf
    reset_optimizer: object = "stage"

    name: ClassVar[str] = "icot"

    def __post_init__(self):
        if int(self.tokens_removed_per_epoch) != self.tokens_removed_per_epoch \
                or self.tokens_removed_per_epoch < 0:
            raise ValueError("tokens_removed_per_epoch must be a non-negative integer, "
                             f"got {self.tokens_removed_per_epoch!r}")
        if not self.removal_smoothing_lambda > 0:
            raise ValueError("removal_smoothing_lambda must be > 0 (inf: off)")
        super().__post_init__()
        self._cdf = None
        if self.removal_smoothing_lambda != math.inf:
            lam = self.removal_smoothing_lambda
            probs = [(1 - math.exp(-lam)) * math.exp(-lam * o) for o in range(SMOOTHING_SUPPORT)]
            probs[-1] += 1.0 - sum(probs)
            cdf, acc = [], 0.0
            for p in probs:
                acc += p
                cdf.append(acc)
            self._cdf = cdf

    def stage(self, epoch: int) -> float:
        """CoT tokens scheduled for removal at `epoch` (math.inf: all)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        n = epoch * self.tokens_removed_per_epoch
        return math.inf if n >= self.remove_all_when_remove_beyond else n

    def tokens_to_remove(self, epoch: int, rng=None) -> float:
        n = self.stage(epoch)
        if self._cdf is not None and n != math.inf:
            u = random_unit(rng)
            n += next((o for o, c in enumerate(self._cdf) if u < c), SMOOTHING_SUPPORT - 1)
        return n

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        cot = steps_from(tok, example, 0)
        n = self.tokens_to_remove(epoch, rng)
        kept = [] if n >= len(cot) else cot[int(n):]
        return TrainingSequence.from_parts(tok.question_ids(example), kept + tok.answer_ids(example))
