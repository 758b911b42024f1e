"""Recipes: ways of training a model from scratch on a CPU that the reference does not have.

A run names them under one mapping of its config, each with its value:

    recipe: {embedding_std: 0.1, token_init: compositional, predict_past_eot: true, shuffle_nodes: true}

Each option is one small class here. It checks its value when it is made, and
whether it fits the run it joins (`fits`: the method, the tokenization, a model from
scratch or not); then it hooks into one of:

- `init_model(model, tok, seed, std)`: the rows of a model built from scratch;
- `training_sequence(tok, seq, rng)`: every TRAINING sequence, after the method laid it
  out (validation sequences stay the reference's, so validation loss compares across
  recipes);
- `lr_scale(progress, num_epochs)`: the factor on the config's lr for the optimizer step
  taken at `progress` epochs into the run (a function of the step's place alone, so a
  resumed run takes the same steps).

The trainer calls `Recipe`'s hooks and knows no option by name. A new option is a class
with a `key` added to OPTIONS, and a test.
"""
from __future__ import annotations

import difflib
import math
import random
from typing import ClassVar

import numpy as np

from coconut.config import INIT_STD
from coconut.curriculum.sequence import IGNORE, TrainingSequence
from coconut.thought_spec import FED_BACK


class Option:
    """One option of a recipe: its value, its checks, and the hooks it uses (the others
    leave the run as it is)."""

    key: ClassVar[str]
    default: ClassVar[object]
    rewrites_sequences: ClassVar[bool] = False   # its training_sequence hook changes sequences when on

    def __init__(self, value):
        self.value = value
        self.check_value()

    def check_value(self) -> None:
        """Raise ValueError saying what is wrong with the value."""

    def fits(self, method, tok, from_scratch: bool) -> None:
        """Raise ValueError saying why this option cannot join the run."""

    def init_model(self, model, tok, seed: int, std: float) -> None:
        pass

    def training_sequence(self, tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
        return seq

    def lr_scale(self, progress: float, num_epochs: int) -> float:
        return 1.0

    def _needs_scratch(self, from_scratch: bool) -> None:
        if not from_scratch:
            raise ValueError(f"{self.key} sets rows of a model trained from scratch; a pretrained GPT-2 brings "
                             "its own (use init: scratch)")


class EmbeddingStd(Option):
    """The spread of a from-scratch model's token and position rows (GPT-2: 0.02): the
    same draws, rescaled. Larger rows let a 2-layer model trained from scratch read its
    tokens over the residual stream sooner."""

    key, default = "embedding_std", INIT_STD

    def check_value(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not 0 < self.value < math.inf:
            raise ValueError(f"embedding_std must be a finite number > 0, got {self.value!r}")

    def fits(self, method, tok, from_scratch: bool) -> None:
        if self.value != self.default:
            self._needs_scratch(from_scratch)

    def init_model(self, model, tok, seed: int, std: float) -> None:
        model.params["transformer.wte.weight"][...] *= self.value / INIT_STD
        model.params["transformer.wpe.weight"][...] *= self.value / INIT_STD


class TokenInit(Option):
    """compositional: the row of each pair or fact token starts as the sum of one random
    vector per part it names ("subject tumpus", "not", "object happy"), so that a token
    few sequences train starts out sharing what the common ones teach."""

    key, default = "token_init", "normal"
    CHOICES = ("normal", "compositional")

    def check_value(self) -> None:
        if self.value not in self.CHOICES:
            raise ValueError(f"token_init must be one of {list(self.CHOICES)}, got {self.value!r}")

    def fits(self, method, tok, from_scratch: bool) -> None:
        if self.value == "compositional":
            self._needs_scratch(from_scratch)
            if tok.token_parts() is None:
                raise ValueError(f"token_init: compositional needs a tokenization with pair or fact tokens "
                                 f"(prosqa_edge_tokens, prontoqa_fact_sentences), got {_kind(tok)}")

    def init_model(self, model, tok, seed: int, std: float) -> None:
        if self.value == "compositional":
            compose_token_rows(model.params["transformer.wte.weight"], tok.token_parts(), seed, std)


class PredictPastEot(Option):
    """The position before `<eot>` (the last thought, or `<bot>` with none) also learns
    the first trained token after `<eot>`. Its final state is what the next stage feeds
    back as a new thought, so that thought starts out standing for the step it replaces;
    the reference trains nothing there, which a from-scratch model could not make up.

    For the modes whose slots take a computed vector (FED_BACK):
    - continuous: the state trained is the new thought itself;
    - soft: the new thought is softmax(logits / temperature) @ wte of that position, and
      the label trains exactly those logits (toward the step's first token);
    - jacobi: a slot added after it reads that position's state one Jacobi iteration
      earlier than the last one, which the label trains; with no thought yet (`<bot>`,
      outside the slot block) it is the very state every iteration's first slot reads,
      and with more iterations than slots the two iterations give the same state (the
      Jacobi fill has reached the sequential one). So it is allowed for all three.
    Pause thoughts feed nothing back, but the last pause's state reaches the positions
    after it through attention: the label gives it the same extra supervision without the
    feedback, the control that tells the label's share of Coconut's lead from the
    feedback's. Methods without thought slots: refused."""

    key, default = "predict_past_eot", False
    rewrites_sequences = True

    def check_value(self) -> None:
        _boolean(self)

    def fits(self, method, tok, from_scratch: bool) -> None:
        if self.value and method.thought_mode not in FED_BACK + ("pause",):
            raise ValueError(f"predict_past_eot trains the last thought slot's position; method {method.name!r} "
                             "has no thought slots (set recipe.predict_past_eot: false)")

    def training_sequence(self, tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
        return with_label_past_eot(tok, seq) if self.value else seq


class ShuffleNodes(Option):
    """Fresh random names for the graph's nodes (ProntoQA: the ontology's concepts) in
    every training sequence of every epoch: the official ProsQA node numbers follow the
    graph's layout, which a symbolic model can read off instead of searching, and names
    that change every epoch stop it from learning the training set by heart."""

    key, default = "shuffle_nodes", False
    rewrites_sequences = True

    def check_value(self) -> None:
        _boolean(self)

    def fits(self, method, tok, from_scratch: bool) -> None:
        if self.value and not tok.renames_nodes:
            raise ValueError(f"shuffle_nodes needs a tokenization with node or concept tokens (prosqa_symbolic, "
                             f"prosqa_edge_tokens, prontoqa_fact_sentences), got {_kind(tok)}")

    def training_sequence(self, tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
        return renamed_nodes(tok, seq, rng) if self.value else seq


class LrDecayEpochs(Option):
    """Over the run's last this many epochs the learning rate falls linearly, step by
    step, from the config's lr towards 0 (the reference keeps it constant). With a
    constant lr a from-scratch model's accuracy in the last stage moves by several points
    from epoch to epoch; the decay lets the final epoch settle instead of landing wherever
    the last step left it."""

    key, default = "lr_decay_epochs", None

    def check_value(self) -> None:
        if self.value is not None and (isinstance(self.value, bool) or not isinstance(self.value, int)
                                       or self.value < 1):
            raise ValueError(f"lr_decay_epochs must be an integer >= 1 (or null), got {self.value!r}")

    def lr_scale(self, progress: float, num_epochs: int) -> float:
        if self.value is None:
            return 1.0
        return min(1.0, (num_epochs - progress) / self.value)


# The order the hooks run in: renaming draws from the epoch's generator, and a resumed
# run must draw as the uninterrupted one did.
OPTIONS = {cls.key: cls for cls in (EmbeddingStd, TokenInit, ShuffleNodes, PredictPastEot, LrDecayEpochs)}
# options that moved elsewhere: where they are now
MOVED = {"first_stage_epochs": "a key of its own beside epochs_per_stage (first_stage_epochs: N), which the "
                               "methods with stages take"}


class Recipe:
    """The options of a config's `recipe:` mapping, each checked and applied in OPTIONS'
    order; an option left out keeps its default (the reference's behaviour)."""

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        for key in options:
            if key in MOVED:
                raise ValueError(f"'{key}' is no recipe option: it is {MOVED[key]}")
            if key not in OPTIONS:
                close = difflib.get_close_matches(str(key), list(OPTIONS), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"unknown option '{key}'{hint}; known: {sorted(OPTIONS)}")
        self.options = [cls(options.get(key, cls.default)) for key, cls in OPTIONS.items()]

    def value(self, key: str):
        return next(o.value for o in self.options if o.key == key)

    def fits(self, method, tok, from_scratch: bool) -> None:
        for option in self.options:
            option.fits(method, tok, from_scratch)
            if option.rewrites_sequences and option.value and method.trains_itself:
                raise ValueError(f"{option.key} rewrites each training sequence; method {method.name!r} trains "
                                 f"pairs of sequences of its own (set recipe.{option.key} off)")

    def init_model(self, model, tok, seed: int) -> None:
        std = self.value("embedding_std")
        for option in self.options:
            option.init_model(model, tok, seed, std)

    def training_sequence(self, tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
        for option in self.options:
            seq = option.training_sequence(tok, seq, rng)
        return seq

    def lr_scale(self, progress: float, num_epochs: int) -> float:
        return math.prod(option.lr_scale(progress, num_epochs) for option in self.options)


def _boolean(option: Option) -> None:
    if not isinstance(option.value, bool):
        raise ValueError(f"{option.key} must be true or false, got {option.value!r}")


def _kind(tok) -> str:
    return repr(tok.kind)


def renamed_nodes(tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
    """`seq` with its graph's nodes (ProntoQA: its ontology's concepts) under a random
    permutation of their names."""
    perm = list(range(tok.max_nodes))
    rng.shuffle(perm)
    return TrainingSequence(tok.relabel_nodes(seq.input_ids, perm), tok.relabel_nodes(seq.labels, perm),
                            seq.n_thoughts)


def with_label_past_eot(tok, seq: TrainingSequence) -> TrainingSequence:
    """`seq` with the position before `<eot>` also trained on the first trained token
    after `<eot>` (unchanged when nothing after `<eot>` is trained)."""
    if tok.eot_id not in seq.input_ids:
        return seq
    eot = seq.input_ids.index(tok.eot_id)
    if eot + 1 == len(seq.labels) or seq.labels[eot + 1] == IGNORE:
        return seq
    labels = list(seq.labels)
    labels[eot] = seq.input_ids[eot + 1]      # read by the position before <eot> (the loss shifts by one)
    return TrainingSequence(seq.input_ids, labels, seq.n_thoughts)


def compose_token_rows(wte: np.ndarray, parts: dict[int, tuple[str, ...]], seed: int, std: float = INIT_STD) -> None:
    """Set the row of each token in `parts` to the sum of one random vector per part it
    names, each vector drawn once (tokens that share a part share its vector), scaled so
    that the rows keep the spread `std`."""
    names = sorted({name for token_parts in parts.values() for name in token_parts})
    rng = np.random.default_rng([seed, 1])      # not the stream the other weights came from
    vectors = dict(zip(names, rng.standard_normal((len(names), wte.shape[1]))))
    for token, token_parts in parts.items():
        wte[token] = std / math.sqrt(len(token_parts)) * sum(vectors[name] for name in token_parts)
