"""What a `<latent>` slot means in a batch, in one object: the Python side of the C
core's `ThoughtSpec`.

    spec = ThoughtSpec("continuous", latent_id=50259, bot_id=50257, eot_id=50258)
    model.loss_and_grad(ids, labels, thoughts=spec)
    model.generate(prompts, eos_id=eos, thoughts=spec)

mode: "continuous" (a slot takes the final hidden state of the position before it),
"pause" (a slot is the ordinary learned embedding of its token: one plain forward) or
"none" (the ids are ordinary tokens). Continuous thoughts need all three ids; the
other modes use none of them.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from . import _C

# name -> the core's mode number; the core defines both
THOUGHT_MODES = dict(_C.THOUGHT_MODES)


@dataclasses.dataclass(frozen=True)
class ThoughtSpec:
    mode: str = "none"
    latent_id: Optional[int] = None
    bot_id: Optional[int] = None
    eot_id: Optional[int] = None

    def __post_init__(self):
        if self.mode not in THOUGHT_MODES:
            raise ValueError(f"thoughts must be one of {sorted(THOUGHT_MODES)}, got {self.mode!r}")
        if self.mode == "continuous" and None in (self.latent_id, self.bot_id, self.eot_id):
            raise ValueError("continuous thoughts need latent_id, bot_id and eot_id (a ThoughtSpec with all "
                             "three, or a model that knows them: add_thought_tokens or model.thoughts)")

    def with_mode(self, mode: str) -> "ThoughtSpec":
        return dataclasses.replace(self, mode=mode)

    def core_args(self) -> dict:
        """The keywords of the core's loss, forward and generate (-1: no such token)."""
        ids = {k: -1 if v is None else int(v) for k, v in
               (("latent_id", self.latent_id), ("bot_id", self.bot_id), ("eot_id", self.eot_id))}
        return dict(mode=THOUGHT_MODES[self.mode], **ids)
