"""Pause-token baseline (Goyal et al. 2024, as in the Coconut paper): No-CoT with a
fixed number of learned `<pause>` tokens between question and answer.

`<pause>` is an ordinary token with its own embedding row (the tokenization must be
built with it); the pauses are not trained (label -100), like the question. The
prompt ends with the same pauses. `n_thoughts` is 0: pauses are not `<latent>` slots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.method import Method
from coconut.curriculum.sequence import TrainingSequence


@dataclass
class PauseToken(Method):
    """n_pause defaults to 6: the paper sets the pause count equal to the number of
    continuous thoughts Coconut uses at test time (6 on all three data sets)."""

    n_pause: int = 6
    reset_optimizer: object = "never"

    name: ClassVar[str] = "pause_token"
    needs_pause_token: ClassVar[bool] = True

    def __post_init__(self):
        if int(self.n_pause) != self.n_pause or self.n_pause < 0:
            raise ValueError(f"n_pause must be a non-negative integer, got {self.n_pause!r}")
        super().__post_init__()

    def _prefix(self, tok, example) -> list[int]:
        self.check_tokenization(tok)
        return tok.question_ids(example) + [tok.pause_id] * self.n_pause

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        return TrainingSequence.from_parts(self._prefix(tok, example), tok.answer_ids(example))

    def prompt_ids(self, tok, example, epoch: int) -> list[int]:
        return self._prefix(tok, example)
