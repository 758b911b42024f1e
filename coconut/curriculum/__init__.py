"""Training methods: how an example becomes tokens and labels at a given epoch.

    method = Coconut(c_thought=1, epochs_per_stage=5, max_latent_stage=6)
    seq = method.sequence(tok, example, epoch, rng)     # TrainingSequence
    prompt = method.prompt_ids(tok, example, epoch)     # for generation
    method.thought_mode                                 # "continuous" | "soft" | "jacobi" | "pause" | "none"
    method.thought_spec(tok)                            # the whole ThoughtSpec the model runs
    method.optimizer_reset(epoch)                       # fresh AdamW at this epoch?

A new method is a subclass of `Method` (write `sequence`, maybe `prompt_ids`), or of
`StageCurriculum` overriding only `example_stage` for a new per-example schedule.
"""
from coconut.curriculum.ablations import NoThought, PauseAsThought
from coconut.curriculum.codi import CODI
from coconut.curriculum.coconut import Coconut, NoCurriculum
from coconut.curriculum.cot import CoT, NoCoT
from coconut.curriculum.frontier import FrontierCoconut
from coconut.curriculum.icot import ICoT
from coconut.curriculum.method import Method
from coconut.curriculum.pause import PauseToken
from coconut.curriculum.pccot import PCCoT
from coconut.curriculum.registry import METHODS, make_method, method_from_reference_config
from coconut.curriculum.sequence import IGNORE, TrainingSequence, latent_prompt, thought_block
from coconut.curriculum.soft import SoftThoughts
from coconut.curriculum.stages import StageCurriculum

__all__ = [
    "METHODS", "IGNORE", "CODI", "CoT", "Coconut", "FrontierCoconut", "ICoT", "Method", "NoCoT", "NoCurriculum",
    "NoThought", "PCCoT", "PauseAsThought", "PauseToken", "SoftThoughts", "StageCurriculum", "TrainingSequence",
    "latent_prompt", "make_method", "method_from_reference_config", "thought_block",
]
