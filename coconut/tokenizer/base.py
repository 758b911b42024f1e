"""The one interface between data and the curriculum: how an example becomes token ids.

Two tokenizations implement it: the GPT-2 BPE text pieces of the reference
(`question + "\n"`, `step + "\n"`, `"### " + answer` + eos) and the symbolic one for
from-scratch CPU runs. The curriculum and the trainer only ever call these methods.
"""
from __future__ import annotations

from typing import Protocol, Sequence


class Tokenization(Protocol):
    vocab_size: int   # rows of the embedding matrix the model needs
    eos_id: int       # end of sequence; also the pad id, as in the reference
    bot_id: int       # <|start-latent|>
    eot_id: int       # <|end-latent|>
    latent_id: int    # <|latent|>, a thought slot
    pause_id: int     # <pause>, for the pause-token baseline

    def question_ids(self, example) -> list[int]:
        """The question piece (for BPE: `question + "\\n"`)."""

    def step_ids(self, example, index: int) -> list[int]:
        """Reasoning step `index` (for BPE: `steps[index] + "\\n"`)."""

    def answer_ids(self, example) -> list[int]:
        """The answer piece followed by eos (for BPE: `"### " + answer`, then eos)."""

    def decode(self, ids: Sequence[int], example=None) -> str:
        """Text in the official sentence forms, so that the reference scoring rule
        (text after the last '#') and the ProsQA path analysis read it directly.
        `example` lets a symbolic tokenization name the example's own symbols."""
