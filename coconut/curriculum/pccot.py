"""PCCoT's Jacobi thoughts (Wu et al. 2025, "Parallel Continuous Chain-of-Thought").

The `<latent>` slots of an example are filled in parallel: every slot starts from the
`<latent>` embedding, then each of `iterations` Jacobi iterations gives every slot the
previous iteration's final hidden state of the position before it (coconut/thought_spec.py).
PCCoT trains with a fixed number of thoughts from the start and no curriculum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.coconut import Coconut


@dataclass
class PCCoT(Coconut):
    """PCCoT(iterations=3, c_thought=1, max_latent_stage=6, pad_latent_to_max=True,
    curriculum=False, reset_optimizer="never", ...).

    What it is: Coconut's final stage from epoch 0, as `no_curriculum` trains it: every
    step removed and max_latent_stage * c_thought `<latent>` slots for every example
    (pad_latent_to_max), the answer trained after them; the slots are Jacobi thoughts
    filled by `iterations` (>= 1) iterations. One optimizer for the whole run, as PCCoT
    trains (reset_optimizer: epoch gives the reference's fresh one every epoch).

    What it is not: PCCoT as its paper trains it. PCCoT trains on top of CODI, whose
    losses add a teacher's explicit chain of thought and distil it into the student's
    hidden states; here the answer tokens are the only training signal. PCCoT's own
    training is method `codi` with `iterations: 3` (and no thought projection).

    `curriculum: true` (method_options) gives Coconut's step-removal curriculum with
    Jacobi thoughts instead of a fixed number of thoughts."""

    iterations: int = 3
    pad_latent_to_max: bool = True
    curriculum: bool = False
    reset_optimizer: object = "never"

    name: ClassVar[str] = "pccot"
    thought_mode: ClassVar[str] = "jacobi"
    thought_params: ClassVar[tuple[str, ...]] = ("iterations",)
