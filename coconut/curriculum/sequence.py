"""What a method produces: one training sequence, and the pieces it is built from.

Every method lays an example out as an *untrained* prefix (question, and for latent
methods `<bot> <latent>... <eot>`, or pause tokens) followed by a *trained* suffix
(remaining reasoning, `"### " + answer`, eos). Labels are -100 on the prefix and equal
to the input ids on the suffix, exactly as the reference builds them; the one-position
shift of next-token prediction happens in the loss, not here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

IGNORE = -100  # label of a position that is not trained


@dataclass
class TrainingSequence:
    input_ids: list[int]
    labels: list[int]      # IGNORE or the input id itself (see recipes.with_label_past_eot), same length
    n_thoughts: int        # number of <latent> slots in input_ids

    def __post_init__(self):
        if len(self.input_ids) != len(self.labels):
            raise ValueError(
                f"input_ids ({len(self.input_ids)}) and labels ({len(self.labels)}) "
                "differ in length")

    @property
    def longest(self) -> int:
        """The most positions this training example needs (a method that trains a second
        sequence beside it, as CODI's teacher, counts that one too)."""
        return len(self.input_ids)

    @classmethod
    def from_parts(cls, untrained: Sequence[int], trained: Sequence[int],
                   n_thoughts: int = 0) -> "TrainingSequence":
        untrained, trained = list(untrained), list(trained)
        return cls(untrained + trained, [IGNORE] * len(untrained) + trained, n_thoughts)


def thought_block(tok, n_latents: int, markers: bool = True) -> list[int]:
    """`<bot> <latent>×n <eot>`; without markers just the latents (none for n = 0)."""
    latents = [tok.latent_id] * n_latents
    return [tok.bot_id] + latents + [tok.eot_id] if markers else latents


def steps_from(tok, example, first: int) -> list[int]:
    """Token ids of steps[first:] (empty when first >= number of steps)."""
    out: list[int] = []
    for i in range(first, len(example.steps)):
        out.extend(tok.step_ids(example, i))
    return out


def latent_prompt(tok, example, n_latents: int, markers: bool = True) -> list[int]:
    """Inference prompt with a chosen number of thoughts (k-sweeps use this directly):
    `question <bot> <latent>×n <eot>`, or just the question without markers."""
    return tok.question_ids(example) + thought_block(tok, n_latents, markers)
