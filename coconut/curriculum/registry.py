"""Names of the methods, and the reference's YAML flags mapped onto them."""
from __future__ import annotations

import dataclasses

from coconut.curriculum.ablations import NoThought, PauseAsThought
from coconut.curriculum.codi import CODI
from coconut.curriculum.coconut import Coconut, NoCurriculum
from coconut.curriculum.cot import CoT, NoCoT
from coconut.curriculum.frontier import FrontierCoconut
from coconut.curriculum.icot import ICoT
from coconut.curriculum.method import Method
from coconut.curriculum.pause import PauseToken
from coconut.curriculum.pccot import PCCoT
from coconut.curriculum.soft import SoftThoughts

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
    "soft_thoughts": SoftThoughts,
    "pccot": PCCoT,
    "codi": CODI,
}


# The reference's keys that shape a method (besides the flags that choose it), and
# first_stage_epochs beside epochs_per_stage. Each reaches the method as given, when
# the method has a field of that name; the method checks it and has its default.
METHOD_KEYS = ("c_thought", "epochs_per_stage", "first_stage_epochs", "max_latent_stage", "pad_latent_to_max",
               "uniform_prob", "reset_optimizer")


def make_method(name: str, **params) -> Method:
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}") from None
    return cls(**params)


def reference_method_class(flags: dict) -> type[Method]:
    """The method a reference run.py config trains. Its flags take effect in this
    order: no_cot (no steps, no markers) > cot (stage 0, no markers) > no_thoughts
    (no markers, no thoughts) > coconut > none of them (the model is not wrapped:
    `<latent>` slots are plain tokens, i.e. pause as thought)."""
    if flags.get("no_cot"):
        return NoCoT
    if flags.get("cot"):
        if (flags.get("uniform_prob") or 0) > 0:
            raise NotImplementedError("uniform_prob > 0 together with cot is not supported")
        return CoT
    if flags.get("no_thoughts"):
        return NoThought
    return Coconut if flags.get("coconut") else PauseAsThought


def method_with_keys(cls: type[Method], keys: dict, options: dict | None = None) -> Method:
    """`cls` made with those of `keys` (METHOD_KEYS given, None = left out) that are its
    fields, and its other `options`; a key the method does not have is not its business
    (CoT has no stages)."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    given = {k: v for k, v in keys.items() if k in METHOD_KEYS and v is not None and k in fields}
    return cls(**given, **(options or {}))


def method_from_reference_config(cfg: dict) -> Method:
    """The method of a reference config's keys (flags and METHOD_KEYS)."""
    return method_with_keys(reference_method_class(cfg), cfg)
