"""Coconut: the step-removal curriculum with continuous thoughts (paper, section 3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.stages import StageCurriculum


@dataclass
class Coconut(StageCurriculum):
    """Coconut(c_thought=1, epochs_per_stage=5, max_latent_stage=6,
    pad_latent_to_max=False, uniform_prob=0.0, curriculum=True, reset_optimizer="epoch").
    The reference configs: ProsQA/ProntoQA c=1, 5 epochs per stage, 6 stages; GSM8k c=2,
    3 epochs per stage, 3 stages; both with pad_latent_to_max=True."""

    name: ClassVar[str] = "coconut"
    thought_mode: ClassVar[str] = "continuous"


@dataclass
class NoCurriculum(Coconut):
    """"w/o curriculum": Coconut trained on final-stage data from epoch 0."""

    curriculum: bool = False
    name: ClassVar[str] = "no_curriculum"
