"""What a `<latent>` slot means in a batch, in one object: the Python side of the C
core's `ThoughtSpec`.

    spec = ThoughtSpec("continuous", latent_id=50259, bot_id=50257, eot_id=50258)
    model.loss_and_grad(ids, labels, thoughts=spec)
    model.generate(prompts, eos_id=eos, thoughts=spec)

mode:

- "continuous" (Coconut): a slot takes the final hidden state (after ln_f) of the
  position before it; n thoughts run as n+1 passes over the key/value cache.
- "soft" (Soft Thinking): a slot takes softmax(logits / temperature) @ wte, the
  probability-weighted mixture of the token embeddings, where logits are the LM head's
  at the position before it; passes as continuous thoughts.
- "jacobi" (PCCoT): the slots of an example are filled in parallel: all start from the
  `<latent>` embedding, then each of `iterations` Jacobi iterations gives every slot the
  previous iteration's final hidden state of the position before it, in one pass over
  the whole slot block against the question's cache; the rest of the sequence runs
  against the slots' last inputs.
- "pause" (a slot is the ordinary learned embedding of its token: one plain forward) or
  "none" (the ids are ordinary tokens).

Continuous, soft and jacobi thoughts need all three ids; the other modes use none of
them. `temperature` (> 0) is read by soft thoughts only, `iterations` (>= 1) by jacobi
thoughts only. Soft thoughts run in fp32 only (a bf16 model refuses them); jacobi
thoughts run under bf16 as continuous thoughts do.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional

from . import _C

# name -> the core's mode number; the core defines both
THOUGHT_MODES = dict(_C.THOUGHT_MODES)
FED_BACK = ("continuous", "soft", "jacobi")   # the modes whose slots take a computed vector


@dataclasses.dataclass(frozen=True)
class ThoughtSpec:
    mode: str = "none"
    latent_id: Optional[int] = None
    bot_id: Optional[int] = None
    eot_id: Optional[int] = None
    temperature: float = 1.0
    iterations: int = 3

    def __post_init__(self):
        if self.mode not in THOUGHT_MODES:
            raise ValueError(f"thoughts must be one of {sorted(THOUGHT_MODES)}, got {self.mode!r}")
        if self.mode in FED_BACK and None in (self.latent_id, self.bot_id, self.eot_id):
            raise ValueError(f"{self.mode} thoughts need latent_id, bot_id and eot_id (a ThoughtSpec with all "
                             "three, or a model that knows them: add_thought_tokens or model.thoughts)")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, numbers.Real) \
                or not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, numbers.Integral) \
                or self.iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {self.iterations!r}")

    def with_mode(self, mode: str) -> "ThoughtSpec":
        return dataclasses.replace(self, mode=mode)

    def core_args(self) -> dict:
        """The keywords of the core's loss, forward and generate (-1: no such token)."""
        ids = {k: -1 if v is None else int(v) for k, v in
               (("latent_id", self.latent_id), ("bot_id", self.bot_id), ("eot_id", self.eot_id))}
        return dict(mode=THOUGHT_MODES[self.mode], temperature=float(self.temperature),
                    iterations=int(self.iterations), **ids)
