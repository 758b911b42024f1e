"""Names of the methods, and the reference's YAML flags mapped onto them."""
from __future__ import annotations

from coconut.curriculum.ablations import NoThought, PauseAsThought
from coconut.curriculum.coconut import Coconut, NoCurriculum
from coconut.curriculum.cot import CoT, NoCoT
from coconut.curriculum.frontier import FrontierCoconut
from coconut.curriculum.icot import ICoT
from coconut.curriculum.method import Method
from coconut.curriculum.pause import PauseToken

METHODS: dict[str, type[Method]] = {
    "cot": CoT,
    "no_cot": NoCoT,
    "icot": ICoT,
    "pause_token": PauseToken,
    "coconut": Coconut,
    "coconut_frontier": FrontierCoconut,
    "no_curriculum": NoCurriculum,
    "no_thought": NoThought,
    "pause_as_thought": PauseAsThought,
}


def make_method(name: str, **params) -> Method:
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}") from None
    return cls(**params)


def method_from_reference_config(cfg: dict) -> Method:
    """The method a reference run.py config trains. Its flags take effect in this
    order: no_cot (no steps, no markers) > cot (stage 0, no markers) > no_thoughts
    (c_thought forced to 0, no markers) > coconut > none of them (the model is not
    wrapped: `<latent>` slots are plain tokens, i.e. pause as thought).
    `reset_optimizer` (bool) carries over: True = fresh optimizer every epoch."""
    flag = lambda key: bool(cfg.get(key, False))
    reset = {} if "reset_optimizer" not in cfg else {"reset_optimizer": bool(cfg["reset_optimizer"])}
    if flag("no_cot"):
        return NoCoT(**reset)
    if flag("cot"):
        if float(cfg.get("uniform_prob", 0.0) or 0.0) > 0:
            raise NotImplementedError("uniform_prob > 0 together with cot is not supported")
        return CoT(**reset)
    stages = dict(
        epochs_per_stage=int(cfg.get("epochs_per_stage", 5)),
        max_latent_stage=int(cfg.get("max_latent_stage", 6)),
        pad_latent_to_max=flag("pad_latent_to_max"),
        uniform_prob=float(cfg.get("uniform_prob", 0.0) or 0.0),
        **reset,
    )
    if flag("no_thoughts"):
        return NoThought(**stages)
    cls = Coconut if flag("coconut") else PauseAsThought
    return cls(c_thought=int(cfg.get("c_thought", 1)), **stages)
