"""Coconut's curriculum with soft thoughts (Soft Thinking, Zhang et al. 2025).

Each `<latent>` slot takes softmax(logits / temperature) @ wte, the mixture of token
embeddings that the LM head's logits at the position before it weigh, instead of that
position's hidden state: a thought stays in the span of the vocabulary's embeddings.
Everything else is Coconut's: the stages, their layout, the prompts, the optimizer
resets, and the reference's method keys (c_thought, epochs_per_stage, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.coconut import Coconut


@dataclass
class SoftThoughts(Coconut):
    """SoftThoughts(temperature=1.0, ...Coconut's options). temperature (finite, > 0)
    sharpens (< 1) or flattens (> 1) the mixture; towards 0 a thought becomes the
    embedding of the most likely token. Soft thoughts run in fp32 only (bf16: false)."""

    temperature: float = 1.0

    name: ClassVar[str] = "soft_thoughts"
    thought_mode: ClassVar[str] = "soft"
    thought_params: ClassVar[tuple[str, ...]] = ("temperature",)
