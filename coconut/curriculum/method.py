"""The base of every training method: an object that turns (example, epoch) into tokens.

A method is plain data (a dataclass of its hyper-parameters) plus three answers:

- `sequence(tok, example, epoch, rng)`: the `TrainingSequence` to train on this epoch;
- `prompt_ids(tok, example, epoch)`: the inference prompt at this epoch's stage;
- `optimizer_reset(epoch)`: whether to start `epoch` with a fresh optimizer.

`thought_mode` names what a `<latent>` slot is: "continuous" (fed with the previous
position's last hidden state), "soft" (the mixture of token embeddings its logits
weigh), "jacobi" (the slot block filled by Jacobi iterations), "pause" (an ordinary
learned embedding, one plain forward) or "none" (the method never emits `<latent>`).
`thought_spec(tok)` is the whole of it, the mode's parameters included: training,
validation, `coconut eval` and k-sweeps all run a method's thoughts from it.

`tok` is any `coconut.tokenizer.base.Tokenization`; methods never hold one, so a method
can be built from a config before any tokenizer exists.
"""
from __future__ import annotations

from typing import ClassVar

from coconut.curriculum.sequence import TrainingSequence
from coconut.thought_spec import ThoughtSpec

RESET_RULES = ("epoch", "stage", "never")


def normalise_reset_rule(rule) -> str:
    """Accept the reference's boolean `reset_optimizer` flag or one of RESET_RULES.
    True means what the reference code does: a fresh optimizer every epoch."""
    if rule is True:
        return "epoch"
    if rule is False or rule is None:
        return "never"
    if rule not in RESET_RULES:
        raise ValueError(f"reset_optimizer must be a bool or one of {RESET_RULES}, got {rule!r}")
    return rule


class Method:
    name: ClassVar[str] = "method"
    thought_mode: ClassVar[str] = "none"
    needs_pause_token: ClassVar[bool] = False
    reset_optimizer = "never"   # overridden by a dataclass field in concrete methods
    max_thoughts: ClassVar[int] = 0   # the most <latent> slots a prompt gets (a property where it varies)
    # A method whose micro-batch is more than one loss over its collated sequences (CODI:
    # a teacher's and a student's) computes it itself, in
    # train_micro_batch(model, sequences, pad_id, latent_id, thoughts, grad_scale) -> dict
    # with "ce_loss" (the loss the epoch line reports) and any other terms; loss_calls is
    # how many dropout-drawing loss calls that makes.
    trains_itself: ClassVar[bool] = False
    loss_calls: ClassVar[int] = 1
    # the fields that are parameters of the thoughts, named as ThoughtSpec's (temperature, iterations)
    thought_params: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        """A subclass that checks fields of its own calls this first. The thought
        parameters are checked here, as ThoughtSpec checks them."""
        self.reset_optimizer = normalise_reset_rule(self.reset_optimizer)
        ThoughtSpec(**self._thought_params())

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        raise NotImplementedError

    def prompt_ids(self, tok, example, epoch: int) -> list[int]:
        """Default: the question alone."""
        return tok.question_ids(example)

    def thought_spec(self, tok) -> ThoughtSpec:
        """What this method's `<latent>` slots are, with `tok`'s thought token ids:
        `thought_mode` with the fields `thought_params` names (the mode's defaults for
        the rest)."""
        return tok.thought_spec(self.thought_mode, **self._thought_params())

    def _thought_params(self) -> dict:
        return {name: getattr(self, name) for name in self.thought_params}

    def stage(self, epoch: int):
        """The scheduled stage of `epoch` (0 for methods without a schedule)."""
        return 0

    def optimizer_reset(self, epoch: int) -> bool:
        """True when `epoch` must start with a fresh optimizer. Epoch 0 always answers
        True (training starts with one). Rules: "epoch" (the reference code), "stage"
        (when the scheduled stage changes: what the reference README describes),
        "never"."""
        rule = self.reset_optimizer
        if epoch == 0 or rule == "epoch":
            return True
        if rule == "stage":
            return self.stage(epoch) != self.stage(epoch - 1)
        return False

    def check_tokenization(self, tok) -> None:
        if self.needs_pause_token and tok.pause_id is None:
            raise ValueError(
                f"method {self.name!r} needs a <pause> token: build the tokenization "
                "with one (TextTokenization(..., with_pause=True))")


def require_thoughts(method, what: str, modes=("continuous",)) -> None:
    """ValueError unless `method` has thoughts of one of `modes` (at least one thought):
    `what` (a stop classifier, a probe) reads the vectors fed back as thoughts."""
    mode = method.thought_mode
    if mode not in modes or method.max_thoughts < 1:
        has = "none" if mode == "none" or method.max_thoughts < 1 else f"{mode} thoughts"
        raise ValueError(f"{what} reads {' or '.join(modes)} thoughts; method {method.name} has {has}")


def random_unit(rng) -> float:
    """A float in [0, 1) from a `random.Random` or a `numpy.random.Generator`."""
    if rng is None:
        raise ValueError("this method draws random numbers: pass rng "
                         "(random.Random or numpy.random.Generator)")
    return float(rng.random())


def random_below(rng, n: int) -> int:
    """A uniform integer in [0, n). With `random.Random` this consumes the stream
    exactly as `random.choice(range(n))` does."""
    if rng is None:
        raise ValueError("this method draws random numbers: pass rng")
    if hasattr(rng, "randrange"):
        return rng.randrange(n)
    return int(rng.integers(0, n))
