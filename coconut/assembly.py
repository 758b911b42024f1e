"""One place that assembles a run from its config, for training or for evaluation:
the recipe, the method, the data, the tokenization, every check, and the model.

    run = assemble(load_config("prosqa-cpu"), "train")          # what Trainer trains
    run = assemble(cfg, "eval")                                  # the best checkpoint
    run = assemble(cfg, "eval", checkpoint="checkpoints/run/checkpoint_16")
    result = run.evaluate()                                      # coconut.evaluate.EvalResult

The trainer, `coconut train` and `coconut eval`, the benchmarks and the notebooks all
come through here, so a run is built the same way whatever it is for. Everything that
can be refused is refused here, before any training or decoding time is spent.

Which weights:
- "train": a fresh model (from scratch, or `init: pretrained` / `load_model_path`), or
  the checkpoint `resume` names, with the trainer state it was saved with;
- "eval": `checkpoint` when given; else with the reference's `only_eval` the weights of
  `load_model_path`; else the run's best checkpoint (best.json in save_path/name). No
  checkpoint there is an error unless `untrained=True` asks for the config's own weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from coconut.build import (build_method, build_model, build_recipe, build_tokenization, check_lengths, check_recipe,
                           load_data, model_shape, saved_tokenization)
from coconut.checkpoints import best_checkpoint, find_checkpoint, read_state
from coconut.evaluate import FINAL_EPOCH, EvalResult, evaluate, k_sweep, sweep_thoughts
from coconut.run_config import ConfigError, RunConfig
from coconut.thought_spec import ThoughtSpec

PURPOSES = ("train", "eval")


@dataclass
class Run:
    cfg: RunConfig
    purpose: str
    recipe: object
    method: object
    tok: object
    model: object
    train_set: list
    val_set: list
    data_names: tuple             # how errors name the training and validation sets
    checkpoint: str | None        # the checkpoint the weights came from (None: the config's own)
    state: dict | None = None     # its trainer state (trainer_state.json)
    first_epoch: int = 0          # "train": the epoch training starts at
    eval_epoch: int = FINAL_EPOCH  # "eval": the epoch whose stage the prompts take

    @property
    def thoughts(self) -> ThoughtSpec:
        """What the method's `<latent>` slots are, with this vocabulary's ids and the
        method's own parameters (`method.thought_spec`)."""
        return self.method.thought_spec(self.tok)

    def evaluate(self, examples=None, *, comm=None, on_batch=None) -> EvalResult:
        """Generation accuracy of the run's model on `examples` (default: the validation
        set) with the method's prompts at `eval_epoch`."""
        cfg = self.cfg
        return evaluate(self.model, self.tok, self.method, self.val_set if examples is None else examples,
                        cfg.max_new_tokens, cfg.eval_batch_size, epoch=self.eval_epoch, comm=comm,
                        on_batch=on_batch)

    def k_sweep(self, ks=None, examples=None, *, comm=None) -> dict:
        """{k: EvalResult} on `examples` (default: the validation set) with k thoughts of the
        method's own kind (coconut.evaluate.sweep_thoughts); ks default: 0..the method's
        most thoughts, 0..6 for a method without."""
        ks = range((self.method.max_thoughts or 6) + 1) if ks is None else ks
        examples = self.val_set if examples is None else examples
        return k_sweep(self.model, self.tok, examples, ks=ks, max_new_tokens=self.cfg.max_new_tokens,
                       batch_size=self.cfg.eval_batch_size, thoughts=sweep_thoughts(self.tok, self.method),
                       comm=comm)

    @property
    def more_thoughts(self) -> int | None:
        """Two thoughts more than the method trains with (None for a method without): how
        `ood` asks whether more thoughts carry a longer search."""
        return self.method.max_thoughts + 2 if self.method.thought_mode != "none" else None

    def ood(self, *, comm=None) -> dict:
        """{split: (own, more)} on the validation set and every out-of-distribution split
        (coconut.data.ood): `own` the EvalResult with the method's own prompt, `more` with
        `more_thoughts` thoughts (None for a method without)."""
        from coconut.data.ood import ood_names, ood_split
        more = self.more_thoughts
        out = {}
        for name, examples in [("validation", self.val_set)] + [(n, ood_split(n)) for n in ood_names()]:
            self.tok.encode_all(examples)
            extra = None if more is None else evaluate(self.model, self.tok, more, examples, self.cfg.max_new_tokens,
                                                       self.cfg.eval_batch_size, thoughts=self.thoughts, comm=comm)
            out[name] = (self.evaluate(examples, comm=comm), extra)
        return out


def assemble(cfg: RunConfig, purpose: str = "train", *, method=None, resume=None, checkpoint: str | None = None,
             untrained: bool = False, with_train: bool | None = None, data_workers: int = 1) -> Run:
    """The run `cfg` describes, built for `purpose` ("train" or "eval").

    method: a method of your own, an object or a class (default: the config's).
    resume ("train"): None (the config's `resume`), an epoch N (checkpoint_N) or "latest".
    checkpoint ("eval"): the checkpoint to score; untrained ("eval"): score the config's
    own weights when the run has no checkpoint. with_train: also read or draw the
    training set (default: only for "train"; an evaluation that fits something on it,
    such as the stop classifier, asks for it). data_workers: processes that draw and
    encode data."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    training = purpose == "train"
    if training and cfg.only_eval:
        raise ConfigError(f"{cfg.source}: only_eval: true asks for an evaluation, not a training run "
                          "(coconut eval CONFIG, or assemble(cfg, 'eval'))")
    with_train = training if with_train is None else with_train
    if training:
        checkpoint = find_checkpoint(cfg, cfg.resume if resume is None else resume)
    elif checkpoint is None and not cfg.only_eval:
        checkpoint = best_checkpoint(cfg.save_dir)
        if checkpoint is None and not untrained:
            raise ConfigError(f"{cfg.source}: no checkpoint to evaluate: {cfg.save_dir} holds no best.json (train "
                              "the run first, or give --checkpoint DIR; --untrained scores the config's own "
                              "weights)")
    state = read_state(checkpoint, cfg if training else None) if checkpoint else None

    recipe = build_recipe(cfg)
    method = build_method(cfg, method)
    train_set, val_set, names = load_data(cfg, data_workers, with_train=with_train)
    saved = state["tokenization"] if state else saved_tokenization(cfg.load_model_path)
    tok = build_tokenization(cfg, method, train_set + val_set, saved)
    tok.encode_all(train_set + val_set, data_workers)
    try:
        method.check_tokenization(tok)
    except ValueError as e:
        raise ConfigError(f"{cfg.source}: method: {e}") from None
    check_recipe(cfg, recipe, method, tok)
    if cfg.thought_projection and method.thought_mode in ("soft", "jacobi"):
        raise ConfigError(f"{cfg.source}: thought_projection: method {method.name} has {method.thought_mode} "
                          "thoughts, which take no projection (set thought_projection: 0)")
    if cfg.bf16 and method.thought_mode == "soft":
        raise ConfigError(f"{cfg.source}: bf16: method {method.name} has soft thoughts, which run in fp32 only "
                          "(set bf16: false)")

    n_positions = model_shape(cfg, tok, checkpoint).n_positions
    if training:
        first_epoch = state["epoch"] if state else cfg.resume
        epochs = range(first_epoch, cfg.num_epochs)
        check_lengths(method, tok, train_set, names[0], epochs, n_positions)
        eval_epoch = FINAL_EPOCH
    else:
        first_epoch = 0
        if state and state["epoch"] > 0:
            eval_epoch = state["epoch"] - 1   # the stage of the last epoch the checkpoint trained
        else:
            eval_epoch = cfg.resume if cfg.only_eval else FINAL_EPOCH   # the reference's only_eval: resume's stage
        epochs = [eval_epoch]
    check_lengths(method, tok, val_set, names[1], epochs, n_positions, cfg.max_new_tokens)
    model = build_model(cfg, tok, checkpoint, recipe)
    return Run(cfg=cfg, purpose=purpose, recipe=recipe, method=method, tok=tok, model=model, train_set=train_set,
               val_set=val_set, data_names=names, checkpoint=checkpoint, state=state, first_epoch=first_epoch,
               eval_epoch=eval_epoch)


def checkpoint_label(run: Run) -> str:
    """How an evaluation names the weights it scored."""
    if run.checkpoint:
        return run.checkpoint
    return os.path.abspath(run.cfg.load_model_path) if run.cfg.load_model_path else "the config's untrained weights"
