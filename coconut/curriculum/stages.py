"""The step-removal curriculum shared by Coconut and its ablations.

Per example and epoch a *stage* s is chosen (`example_stage`), then laid out
(`layout`). The reference's rules, kept exactly:

- scheduled stage = epoch // epochs_per_stage, at most the final stage
  max_latent_stage + 1 (w/o curriculum: the final stage from epoch 0). With
  first_stage_epochs = f set, stage 0 lasts f epochs instead and stage s >= 1 starts at
  epoch f + (s - 1)·epochs_per_stage: a model trained from scratch must first learn to
  read the graph in language before thoughts replace steps;
- with probability uniform_prob an example instead takes a stage drawn uniformly from
  {0, ..., len(steps)};
- s <= max_latent_stage: the first s steps are removed and s·c latents inserted, with
  no min(s, len(steps)): 3 steps at stage 5 lose all steps and get 5·c latents;
- s > max_latent_stage (final stage): every step removed, max_latent_stage·c latents if
  pad_latent_to_max, else min(len(steps), max_latent_stage)·c;
- inference prompt at stage s: min(m, s)·c latents, m = max_latent_stage if
  pad_latent_to_max else min(max_latent_stage, len(steps)) (the reference's
  validation prompts; note this differs from training at s > len(steps) without
  padding).

To try another per-example schedule, subclass and override `example_stage` only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from coconut.curriculum.method import Method, random_below, random_unit
from coconut.curriculum.sequence import TrainingSequence, steps_from, thought_block


@dataclass
class StageCurriculum(Method):
    c_thought: int = 1
    epochs_per_stage: int = 5
    max_latent_stage: int = 6
    pad_latent_to_max: bool = False
    uniform_prob: float = 0.0
    curriculum: bool = True
    reset_optimizer: object = "epoch"
    first_stage_epochs: Optional[int] = None   # None: stage 0 lasts epochs_per_stage too

    name: ClassVar[str] = "stage_curriculum"
    thought_mode: ClassVar[str] = "continuous"
    with_thoughts: ClassVar[bool] = True   # False: no <bot>/<latent>/<eot> at all

    def __post_init__(self):
        if not self.with_thoughts:
            self.c_thought = 0   # as the reference's no_thoughts: whatever the config said
        if int(self.c_thought) != self.c_thought or self.c_thought < 0:
            raise ValueError(f"c_thought must be a non-negative integer, got {self.c_thought!r}")
        if self.with_thoughts and self.c_thought == 0:
            raise ValueError("c_thought = 0 leaves no thoughts: use NoThought for that ablation")
        if int(self.epochs_per_stage) != self.epochs_per_stage or self.epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage must be a positive integer, got {self.epochs_per_stage!r}")
        first = self.first_stage_epochs
        if first is not None and (isinstance(first, bool) or int(first) != first or first < 1):
            raise ValueError(f"first_stage_epochs must be a positive integer or None, got {first!r}")
        if int(self.max_latent_stage) != self.max_latent_stage or self.max_latent_stage < 0:
            raise ValueError(f"max_latent_stage must be a non-negative integer, got {self.max_latent_stage!r}")
        if not 0.0 <= self.uniform_prob <= 1.0:
            raise ValueError(f"uniform_prob must lie in [0, 1], got {self.uniform_prob!r}")
        super().__post_init__()

    # -- which stage ------------------------------------------------------------

    @property
    def final_stage(self) -> int:
        return self.max_latent_stage + 1

    def stage(self, epoch: int) -> int:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not self.curriculum:
            return self.final_stage
        first = self.first_stage_epochs or self.epochs_per_stage
        scheduled = 0 if epoch < first else 1 + (epoch - first) // self.epochs_per_stage
        # every stage past max_latent_stage lays out the same: report them as one, so
        # the stage-change optimizer reset and the per-stage plots see no false changes
        return min(scheduled, self.final_stage)

    def example_stage(self, example, epoch: int, rng=None) -> int:
        """The stage this example is trained at in `epoch`: the override point."""
        if self.uniform_prob > 0 and random_unit(rng) < self.uniform_prob:
            return random_below(rng, len(example.steps) + 1)
        return self.stage(epoch)

    # -- layout of a stage ------------------------------------------------------

    @property
    def thoughts_per_step(self) -> int:
        return self.c_thought

    @property
    def max_thoughts(self) -> int:
        """The most thoughts a prompt gets (the final stage's, padded to max_latent_stage)."""
        return self.max_latent_stage * self.thoughts_per_step

    def removed_and_latents(self, n_steps: int, stage: int) -> tuple[int, int]:
        """(steps removed, latent slots) of a training sequence at `stage`."""
        if stage < 0:
            raise ValueError(f"stage must be >= 0, got {stage}")
        if stage > self.max_latent_stage:
            per_example = (self.max_latent_stage if self.pad_latent_to_max
                           else min(n_steps, self.max_latent_stage))
            return n_steps, per_example * self.thoughts_per_step
        return min(stage, n_steps), stage * self.thoughts_per_step

    def layout(self, tok, example, stage: int) -> TrainingSequence:
        removed, n_latents = self.removed_and_latents(len(example.steps), stage)
        untrained = tok.question_ids(example) + thought_block(tok, n_latents, self.with_thoughts)
        trained = steps_from(tok, example, removed) + tok.answer_ids(example)
        return TrainingSequence.from_parts(untrained, trained, n_latents)

    def longest_layout(self, tok, example) -> tuple[int, int]:
        """(length, stage) of the longest of the example's layouts over every stage it may
        take (the last such stage on a tie). The run's length check asks this of every
        fresh question, so the layout here is counted from its pieces' lengths, not built;
        a subclass with a layout of its own is measured on it."""
        stages = range(self.final_stage + 1)
        if type(self).layout is not StageCurriculum.layout:
            return max((len(self.layout(tok, example, s).input_ids), s) for s in stages)
        steps = [len(tok.step_ids(example, i)) for i in range(len(example.steps))]
        # the question, the answer and thought_block's <bot> <eot>
        fixed = len(tok.question_ids(example)) + len(tok.answer_ids(example)) + (2 if self.with_thoughts else 0)

        def length(stage):
            removed, n_latents = self.removed_and_latents(len(steps), stage)
            return fixed + n_latents + sum(steps[removed:])
        return max((length(s), s) for s in stages)

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        return self.layout(tok, example, self.example_stage(example, epoch, rng))

    # -- inference ----------------------------------------------------------------

    def prompt_thoughts(self, n_steps: int, stage: int) -> int:
        m = self.max_latent_stage if self.pad_latent_to_max else min(self.max_latent_stage, n_steps)
        return min(m, stage) * self.thoughts_per_step

    def prompt_ids_at_stage(self, tok, example, stage: int) -> list[int]:
        k = self.prompt_thoughts(len(example.steps), stage)
        return tok.question_ids(example) + thought_block(tok, k, self.with_thoughts)

    def prompt_ids(self, tok, example, epoch: int) -> list[int]:
        return self.prompt_ids_at_stage(tok, example, self.stage(epoch))
