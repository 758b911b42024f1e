"""Coconut's ablations that keep its step-removal curriculum (paper, table 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.stages import StageCurriculum


@dataclass
class NoThought(StageCurriculum):
    """"w/o thought": the same step removal with no <bot>, <latent> or <eot> at all.
    The reference (`no_thoughts`) sets c_thought = 0 and drops the markers, so stage s
    is `question steps[s:] "### answer" eos`, and the prompt is the question alone.
    `c_thought` is set to 0 whatever it is given."""

    name: ClassVar[str] = "no_thought"
    thought_mode: ClassVar[str] = "none"
    with_thoughts: ClassVar[bool] = False


@dataclass
class PauseAsThought(StageCurriculum):
    """"pause as thought": Coconut's sequences, with every <latent> slot kept as the
    learned <latent> embedding (no feedback: one ordinary forward). In the reference
    this is a config with coconut, cot, no_thoughts and no_cot all false."""

    name: ClassVar[str] = "pause_as_thought"
    thought_mode: ClassVar[str] = "pause"
