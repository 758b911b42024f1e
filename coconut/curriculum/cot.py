"""The explicit-language baselines: CoT and No-CoT (no markers, no thoughts).

In the reference (`cot` / `no_cot`) the stage is always 0 and `<bot>`/`<eot>` are left
out; `no_cot` also drops every step. The prompt is the question alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.method import Method
from coconut.curriculum.sequence import TrainingSequence, steps_from


@dataclass
class CoT(Method):
    """question → all steps → "### answer" eos; trained on steps and answer."""

    reset_optimizer: object = "never"
    name: ClassVar[str] = "cot"

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        return TrainingSequence.from_parts(
            tok.question_ids(example), steps_from(tok, example, 0) + tok.answer_ids(example))


@dataclass
class NoCoT(Method):
    """question → "### answer" eos."""

    reset_optimizer: object = "never"
    name: ClassVar[str] = "no_cot"

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        return TrainingSequence.from_parts(tok.question_ids(example), tok.answer_ids(example))
