"""The training loop: epochs, stages, optimizer resets, validation, checkpoints.

    result = train(load_config("coconut/configs/default.yaml"))
    result.best_accuracy, result.history[-1]["val_accuracy"]

`Trainer(config)` does everything that can fail first (data, tokenization, lengths,
model, the checkpoint to resume) and only then `run()` spends training time.

Randomness: the order and the per-example draws of epoch e come from
`random.Random(f"coconut/{seed}/train/{e}")`, dropout from the model's counter
`dropout_calls`. A checkpoint therefore holds all a resume needs: weights, AdamW
moments, the epoch and step reached, and that counter; a resumed run ends with the
same weights, bit for bit, as one that never stopped.

Save directory `save_path/name/`:
    checkpoint_N/          after N epochs: config.json + model.safetensors (Hugging
                           Face), optimizer.npz, trainer_state.json
    checkpoint_N_stepS/    written on Ctrl-C: S optimizer steps into epoch N
    checkpoint_last/       with save_only_improve, the latest epoch that did not improve
    best.json              epoch and accuracy of the best validation accuracy so far
    metrics.jsonl          one line per epoch (and per step with log_every_steps)

Under MPI (`mpirun -np N coconut train CONFIG`, see coconut.distributed) every rank runs
this loop on the same data; rank r computes the micro-batches j = r, r + N, ... of each
step (gradient_accumulation_steps must be a multiple of N) with the single-process
dropout seeds and grad_scale, one in-place all-reduce sums `model.grad_block`, and all
ranks take the same AdamW step: N processes follow the one-process trajectory up to
summation order, and a checkpoint written with one N resumes with another. Validation
is sharded by batch and gathered. Rank 0 alone writes checkpoints, metrics and progress
output; Ctrl-C under mpirun ends the job (resume from the last epoch's checkpoint).
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

import coconut
from coconut import distributed, hub_cache
from coconut.collate import collate
from coconut.config import INIT_STD, GPT2Config
from coconut.curriculum import METHODS, StageCurriculum, method_from_reference_config
from coconut.curriculum.method import normalise_reset_rule
from coconut.curriculum.sequence import IGNORE, TrainingSequence
from coconut.data import GENERATORS, load_examples
from coconut.evaluate import EvalResult, evaluate
from coconut.progress import Progress
from coconut.run_config import ConfigError, RunConfig, reference_flags
from coconut.summary import summarize

GPT2_COPY_FROM = 16791   # the GPT-2 token "<<": the reference initialises the new rows from it
CHECKPOINT = re.compile(r"^checkpoint_(\d+)(?:_step(\d+))?$")
# Keys that may change between a run and its resume without changing the trajectory.
RESUME_MAY_CHANGE = {"num_epochs", "resume", "threads", "save_path", "name", "max_new_tokens", "eval_batch_size",
                     "val_size", "log_every_steps", "only_eval", "debug", "project", "save_only_improve",
                     "load_model_path", "model_id", "train_path", "val_path"}


@dataclass
class TrainResult:
    model: object
    history: list = field(default_factory=list)   # the per-epoch metrics lines
    best_accuracy: float = -1.0
    best_epoch: int | None = None
    save_dir: str = ""
    interrupted: bool = False
    seconds: float = 0.0          # wall time of run()
    tokens_trained: int = 0       # padding-free tokens of the steps run() took
    summary: object = None        # a coconut.summary.RunSummary when run(summary=True)


def train(config: RunConfig, resume=None) -> TrainResult:
    return Trainer(config, resume=resume).run()


class Trainer:
    def __init__(self, config: RunConfig, resume=None, verbose: bool = True, world=None,
                 progress_every: float = 30.0):
        """resume: None (config.resume), an epoch N (checkpoint_N) or "latest".
        world: the process group (default `coconut.distributed.world()`).
        progress_every: seconds between progress lines when the output is no terminal
        (on one, tqdm bars)."""
        cfg = self.cfg = config
        self.world = world if world is not None else distributed.world()
        self.verbose = verbose and self.world.is_root
        self.progress_every = progress_every
        if not cfg.only_eval:
            distributed.check_accumulation(cfg.gradient_accumulation_steps, self.world.size, cfg.source)
        distributed.configure_threads(self.world, cfg.threads)
        self.save_dir = cfg.save_dir
        resume = cfg.resume if resume is None else resume
        ckpt = None if cfg.only_eval else find_checkpoint(cfg, resume)
        state = read_state(ckpt, cfg) if ckpt else None

        self.method = build_method(cfg)
        self.train_set, self.val_set, names = load_data(cfg)
        saved_tok = state["tokenization"] if state else saved_tokenization(cfg.load_model_path)
        self.tok = build_tokenization(cfg, self.method, self.train_set + self.val_set, saved_tok)
        self.method.check_tokenization(self.tok)
        n_positions = model_shape(cfg, self.tok, ckpt).n_positions
        first_epoch = state["epoch"] if state else (0 if cfg.only_eval else cfg.resume)
        if not cfg.only_eval:
            check_lengths(self.method, self.tok, self.train_set, names[0], range(first_epoch, cfg.num_epochs),
                          n_positions)
        eval_epochs = [cfg.resume] if cfg.only_eval else range(first_epoch, cfg.num_epochs)
        check_lengths(self.method, self.tok, self.val_set, names[1], eval_epochs, n_positions, cfg.max_new_tokens)

        self.model = build_model(cfg, self.tok, ckpt)
        self.optimizer = coconut.AdamW(self.model, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                       weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps)
        self.epoch, self.step_in_epoch, self.global_step = first_epoch, 0, 0
        self.best_accuracy, self.best_epoch = -1.0, None
        self.tokens_trained = 0   # by this process's run(), resumed epochs not counted
        if state:
            self.optimizer.load_state_dict(dict(np.load(os.path.join(ckpt, "optimizer.npz"))))
            self.model.dropout_calls = state["dropout_calls"]
            self.step_in_epoch, self.global_step = state["step_in_epoch"], state["global_step"]
            self.best_accuracy, self.best_epoch = state["best_accuracy"], state["best_epoch"]
        elif not cfg.only_eval and not cfg.debug:
            refuse_to_overwrite(self.save_dir)
        self.resumed_from = ckpt
        self._stop = False
        if self.world.size > 1:
            self._agree_across_ranks()

    def _agree_across_ranks(self) -> None:
        """Every rank must start from the same state: check what each one read, then copy
        rank 0's weights and moments to all (a guard, they are equal already)."""
        data = "\n".join(ex.question for ex in self.train_set + self.val_set).encode()
        mine = {"checkpoint": os.path.basename(self.resumed_from or ""), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "dropout_calls": self.model.dropout_calls, "parameters": self.model.num_parameters,
                "data": (len(self.train_set), len(self.val_set), zlib.crc32(data))}
        every = self.world.allgather(mine)
        differ = [r for r, s in enumerate(every) if s != every[0]]
        if differ:
            raise ConfigError(f"{self.cfg.source}: the {self.world.size} MPI processes start from different "
                              f"states (rank 0: {every[0]}; rank {differ[0]}: {every[differ[0]]}): every rank must "
                              "read the same config, data and save_path (across machines, a shared file system)")
        self.world.bcast_(self.model.param_block, self.optimizer.exp_avg, self.optimizer.exp_avg_sq)

    # ------------------------------------------------------------------ the loop

    def run(self, summary: bool = False) -> TrainResult:
        """Train (or with only_eval, evaluate). summary: also fill `result.summary`
        (coconut.summary: final and best accuracy, time, tokens, the final model's
        k-sweep) unless the run was interrupted."""
        cfg, result = self.cfg, TrainResult(self.model, save_dir=self.save_dir)
        start = time.perf_counter()
        if cfg.only_eval:
            ev = self.accuracy(cfg.resume)
            result.history.append({"epoch": cfg.resume, "val_accuracy": ev.accuracy,
                                   "mean_new_tokens": ev.mean_new_tokens})
            self.say(f"accuracy {ev.accuracy:.4f} on {len(self.val_set)} examples "
                     f"({ev.mean_new_tokens:.1f} new tokens on average)")
            return result
        if self.world.is_root:
            os.makedirs(self.save_dir, exist_ok=True)
        if self.world.size > 1:
            self.say(f"data-parallel over {self.world.describe()}, {coconut.get_num_threads()} threads each")
        if self.resumed_from:
            self.say(f"resuming from {self.resumed_from}")
            self.log({"event": "resume", "checkpoint": self.resumed_from})
        # Under mpirun a Ctrl-C ends the whole job (mpirun signals every rank).
        with self.stop_on_ctrl_c() if self.world.size == 1 else nullcontext():
            for epoch in range(self.epoch, cfg.num_epochs):
                self.epoch = epoch
                if self.step_in_epoch == 0 and self.method.optimizer_reset(epoch):
                    self.optimizer.reset()
                train_loss, tokens_per_s = self.train_epoch(epoch)
                if self._stop:   # Ctrl-C inside the epoch: keep the steps done so far
                    path = self.save_checkpoint(f"checkpoint_{epoch}_step{self.step_in_epoch}")
                    self.say(f"stopped by Ctrl-C; resume with --resume (checkpoint {path})")
                    result.interrupted = True
                    break
                self.step_in_epoch = 0
                line = self.end_of_epoch(epoch, train_loss, tokens_per_s)
                result.history.append(line)
                if self._stop:
                    self.say("stopped by Ctrl-C after the epoch's checkpoint; resume with --resume")
                    result.interrupted = True
                    break
        self.world.barrier()   # every rank returns once rank 0's files are written
        result.best_accuracy, result.best_epoch = self.best_accuracy, self.best_epoch
        result.seconds, result.tokens_trained = time.perf_counter() - start, self.tokens_trained
        if summary and not result.interrupted:
            result.summary = summarize(self, result)
        return result

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg, model, method, tok = self.cfg, self.model, self.method, self.tok
        rng = random.Random(f"coconut/{cfg.seed}/train/{epoch}")
        examples = self.training_set(epoch)
        order = list(range(len(examples)))
        rng.shuffle(order)
        sequences = [method.sequence(tok, examples[i], epoch, rng) for i in order]
        if cfg.shuffle_nodes:
            sequences = [renamed_nodes(tok, seq, rng) for seq in sequences]
        if cfg.predict_past_eot:
            sequences = [with_label_past_eot(tok, seq) for seq in sequences]
        bs, acc = cfg.batch_size_training, cfg.gradient_accumulation_steps
        micro = [sequences[i:i + bs] for i in range(0, len(sequences), bs)]
        steps = [micro[i:i + acc] for i in range(0, len(micro), acc)]
        model.train()
        model.zero_grad()
        losses, tokens, start = [], 0, time.perf_counter()   # losses: (step, micro-batch, loss) of this rank
        progress = self.progress(f"epoch {epoch + 1}/{cfg.num_epochs} (stage {method.stage(epoch)}) training",
                                 len(steps), "step", initial=self.step_in_epoch)
        for step in range(self.step_in_epoch, len(steps)):
            losses += [(step, j, loss) for j, loss in self.train_step(steps[step])]
            # tokens of the whole step (every rank's micro-batches): the padding-free lengths
            step_tokens = sum(len(s.input_ids) for seqs in steps[step] for s in seqs)
            tokens += step_tokens
            self.step_in_epoch, self.global_step = step + 1, self.global_step + 1
            tokens_per_s = tokens / max(time.perf_counter() - start, 1e-9)
            progress.advance(step + 1, loss=losses[-1][2], tokens=step_tokens)
            if cfg.log_every_steps and self.global_step % cfg.log_every_steps == 0:
                # the loss of the step's last micro-batch computed here (under MPI: on rank 0)
                self.log({"epoch": epoch, "step": self.global_step, "loss": losses[-1][2],
                          "tokens_per_s": tokens_per_s})
            if self._stop:
                break
        progress.close()
        self.tokens_trained += tokens
        if self.world.size > 1:
            # every micro-batch loss, in the single process's order; and a guard against ranks
            # drifting apart by the rounding of an all-reduce that sums in rank-dependent order
            losses = sorted(x for part in self.world.allgather(losses) for x in part)
            self.world.bcast_(model.param_block, self.optimizer.exp_avg, self.optimizer.exp_avg_sq)
        mean_loss = float(np.mean([loss for _, _, loss in losses])) if losses else math.nan
        return mean_loss, tokens / max(time.perf_counter() - start, 1e-9)

    def training_set(self, epoch: int) -> list:
        """The examples epoch `epoch` trains on: the training set, or with
        generate.fresh_each_epoch the epoch's own part of the generator's stream."""
        g = self.cfg.generate
        if g is None or not g.fresh_each_epoch or epoch == 0:
            return self.train_set
        start = g.n + g.val_n + (epoch - 1) * g.n   # after the first set and the validation examples
        count = min(g.n, self.cfg.train_size or g.n)   # draw only what train_size keeps
        examples = GENERATORS[g.dataset](count, g.seed, start=start)
        check_lengths(self.method, self.tok, examples, f"generated {g.dataset} training set of epoch {epoch + 1}",
                      [epoch], self.model.config.n_positions)
        return examples

    def train_step(self, micro_batches) -> list[tuple[int, float]]:
        """One optimizer step on `micro_batches` (lists of training sequences, in order).
        This rank computes micro-batches j = rank, rank + N, ... each exactly as the
        single process does: the reference's mean loss / gradient_accumulation_steps, and
        the dropout seed of its place in the run (`dropout_calls` = the step's first call
        + j). One in-place all-reduce sums the gradient block over the ranks; every rank
        then takes the same AdamW step. Returns this rank's (j, loss)."""
        model, tok, method, world = self.model, self.tok, self.method, self.world
        acc = self.cfg.gradient_accumulation_steps
        first_call, per_pass = model.dropout_calls, distributed.dropout_calls_per_pass(model)
        done = []
        for j in distributed.shard(len(micro_batches), world.rank, world.size):
            model.dropout_calls = first_call + j * per_pass
            b = collate(micro_batches[j], tok.eos_id, tok.latent_id)
            # The reference divides each micro-batch's mean loss by the accumulation steps.
            loss, _ = model.loss_and_count(b.input_ids, b.labels, b.attention_mask, b.position_ids,
                                           thoughts=method.thought_mode, latent_id=tok.latent_id,
                                           bot_id=tok.bot_id, eot_id=tok.eot_id, grad_scale=1.0 / acc)
            done.append((j, loss))
        model.dropout_calls = first_call + len(micro_batches) * per_pass
        world.allreduce_sum_(model.grad_block)
        self.optimizer.step()
        model.zero_grad()
        return done

    def end_of_epoch(self, epoch: int, train_loss: float, tokens_per_s: float) -> dict:
        val_loss = self.validation_loss(epoch)
        ev = self.accuracy(epoch)
        improved = ev.accuracy > self.best_accuracy
        if improved:
            self.best_accuracy, self.best_epoch = ev.accuracy, epoch + 1
        line = {"epoch": epoch + 1, "stage": self.method.stage(epoch), "train_loss": train_loss,
                "val_loss": val_loss, "val_accuracy": ev.accuracy, "mean_new_tokens": ev.mean_new_tokens,
                "mean_thoughts": float(np.mean([r.n_thoughts for r in ev.records])),
                "tokens_per_s": tokens_per_s, "global_step": self.global_step,
                "optimizer_reset": self.method.optimizer_reset(epoch), "best_accuracy": self.best_accuracy}
        self.epoch = epoch + 1   # what a checkpoint of this moment resumes at
        if not self.cfg.debug and self.world.is_root:
            if improved or not self.cfg.save_only_improve:
                self.save_checkpoint(f"checkpoint_{epoch + 1}")
            else:
                self.save_checkpoint("checkpoint_last")
            if improved:
                write_json_atomic(os.path.join(self.save_dir, "best.json"),
                                  {"epoch": epoch + 1, "accuracy": ev.accuracy, "checkpoint": f"checkpoint_{epoch + 1}"})
        self.log(line)
        stage = line["stage"]
        self.say(f"epoch {epoch + 1}/{self.cfg.num_epochs} (stage {stage}): train loss {train_loss:.4f}, "
                 f"val loss {val_loss:.4f}, val accuracy {ev.accuracy:.4f} (best {self.best_accuracy:.4f}), "
                 f"{tokens_per_s:.0f} tokens/s")
        return line

    # ------------------------------------------------------------------ validation

    def validation_loss(self, epoch: int) -> float:
        """Mean loss per supervised token of the validation sequences at this epoch's stage.
        Under MPI batch k is computed by rank k mod N and the sums are taken in batch order."""
        rng = random.Random(f"coconut/{self.cfg.seed}/val/{epoch}")
        seqs = [self.method.sequence(self.tok, ex, epoch, rng) for ex in self.val_set]
        bs = self.cfg.eval_batch_size
        starts = range(0, len(seqs), bs)
        mine, ks = [], distributed.shard(len(starts), self.world.rank, self.world.size)
        progress = self.progress(f"epoch {epoch + 1}/{self.cfg.num_epochs} validation loss", len(ks), "batch")
        for k in ks:
            b = collate(seqs[starts[k]:starts[k] + bs], self.tok.eos_id, self.tok.latent_id)
            loss, n = self.model.loss_and_count(b.input_ids, b.labels, b.attention_mask, b.position_ids,
                                                backward=False, thoughts=self.method.thought_mode,
                                                latent_id=self.tok.latent_id, bot_id=self.tok.bot_id,
                                                eot_id=self.tok.eot_id)
            mine.append((k, loss, n))
            progress.advance(len(mine), loss=loss, tokens=int(b.attention_mask.sum()))
        progress.close()
        batches = sorted(x for part in self.world.allgather(mine) for x in part)
        total = count = 0.0
        for _, loss, n in batches:
            total, count = total + loss * n, count + n
        return total / max(count, 1)

    def accuracy(self, epoch: int) -> EvalResult:
        progress = self.progress(f"epoch {epoch + 1}/{self.cfg.num_epochs} generation", len(self.val_set), "example")
        ev = evaluate(self.model, self.tok, self.method, self.val_set, self.cfg.max_new_tokens,
                      self.cfg.eval_batch_size, epoch=epoch, comm=self.world,
                      on_batch=lambda done, total, new: progress.advance(done, total=total, tokens=new))
        progress.close()
        return ev

    # ------------------------------------------------------------------ output

    def say(self, text: str) -> None:
        if self.verbose:
            tqdm.write(text)
            sys.stdout.flush()   # a log file is block-buffered: show each line as it comes

    def progress(self, desc: str, total: int, unit: str, initial: int = 0) -> Progress:
        return Progress(desc, total, unit=unit, every=self.progress_every, initial=initial, enabled=self.verbose)

    def log(self, line: dict) -> None:
        if not self.world.is_root:
            return
        os.makedirs(self.save_dir, exist_ok=True)
        with open(os.path.join(self.save_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def save_checkpoint(self, name: str) -> str:
        state = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                 "dropout_calls": self.model.dropout_calls, "best_accuracy": self.best_accuracy,
                 "best_epoch": self.best_epoch, "tokenization": tokenization_dict(self.tok),
                 "method": self.method.name, "config": self.cfg.to_dict(),
                 "rng": f"random.Random('coconut/{self.cfg.seed}/train/<epoch>') per epoch"}
        return save_checkpoint(os.path.join(self.save_dir, name), self.model, self.optimizer, state,
                               self.tok.eos_id)

    def stop_on_ctrl_c(self):
        """The first Ctrl-C asks the loop to stop after the current step and write a
        checkpoint; a second one interrupts at once."""
        trainer = self

        class _Handler:
            def __enter__(self):
                self.previous = None
                if threading.current_thread() is threading.main_thread():
                    self.previous = signal.signal(signal.SIGINT, self.handle)
                return self

            def handle(self, signum, frame):
                trainer._stop = True
                trainer.say("Ctrl-C: stopping after this step (press again to abort)")
                signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)

            def __exit__(self, *exc):
                if self.previous is not None:
                    signal.signal(signal.SIGINT, self.previous)
                return False

        return _Handler()


def renamed_nodes(tok, seq: TrainingSequence, rng: random.Random) -> TrainingSequence:
    """`seq` with its graph's nodes (ProntoQA: its ontology's concepts) under random new
    names: node indices of the official ProsQA data follow the graph's layout (the root
    is node 0 or 1), which a symbolic model could read off instead of searching; fresh
    names every epoch also stop it from memorising the training examples."""
    perm = list(range(tok.max_nodes))
    rng.shuffle(perm)
    return TrainingSequence(tok.relabel_nodes(seq.input_ids, perm), tok.relabel_nodes(seq.labels, perm),
                            seq.n_thoughts)


def with_label_past_eot(tok, seq: TrainingSequence) -> TrainingSequence:
    """`seq` with the position before `<eot>` (the last thought, or `<bot>` with none)
    also trained to predict the first trained token after `<eot>`. That position's final
    state becomes the next thought one stage later, so it starts out standing for the
    step it will replace (what we guess a pretrained GPT-2's state there does). Not in
    the reference: a from-scratch model trains nothing there before its thoughts need it."""
    if tok.eot_id not in seq.input_ids:
        return seq
    eot = seq.input_ids.index(tok.eot_id)
    if eot + 1 == len(seq.labels) or seq.labels[eot + 1] == IGNORE:
        return seq
    labels = list(seq.labels)
    labels[eot] = seq.input_ids[eot + 1]      # read by the position before <eot> (the loss shifts by one)
    return TrainingSequence(seq.input_ids, labels, seq.n_thoughts)


# ----------------------------------------------------------------------- building


def build_method(cfg: RunConfig):
    """`method` by name (with the reference's stage keys where the method has them), or
    the method the reference flags select; `reset_optimizer`, when set, overrides."""
    if cfg.method:
        cls = METHODS[cfg.method]
        fields = set(cls.__dataclass_fields__)
        stage_keys = {k: v for k, v in reference_flags(cfg).items() if k in fields and k in cfg.explicit}
        if issubclass(cls, StageCurriculum) and "c_thought" in stage_keys and not cls.with_thoughts:
            stage_keys.pop("c_thought")
        options = {**stage_keys, **cfg.method_options}
    else:
        cls, options = None, dict(cfg.method_options)
    try:
        method = cls(**options) if cls else method_from_reference_config(reference_flags(cfg))
        for key, value in (options.items() if cls is None else ()):
            setattr(method, key, value)
        if "reset_optimizer" in cfg.explicit:
            method.reset_optimizer = normalise_reset_rule(cfg.reset_optimizer)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise ConfigError(f"{cfg.source}: method: {e}") from None
    return method


def load_data(cfg: RunConfig):
    """(train examples, validation examples, (train name, validation name))."""
    if cfg.generate is not None:
        g = cfg.generate
        from_file = cfg.val_path is not None
        examples = GENERATORS[g.dataset](g.n + (0 if from_file else g.val_n), g.seed)
        train = examples[:g.n]
        val = _load(cfg.val_path, "val_path", cfg) if from_file else examples[g.n:]
        names = (f"generated {g.dataset} (seed {g.seed}) training set",
                 cfg.val_path if from_file else f"generated {g.dataset} validation set")
    else:
        train = [] if cfg.train_path is None or cfg.only_eval else _load(cfg.train_path, "train_path", cfg)
        val = _load(cfg.val_path, "val_path", cfg)
        names = (cfg.train_path, cfg.val_path)
    train = train[:cfg.train_size] if cfg.train_size else train
    val = val[:cfg.val_size] if cfg.val_size else val
    if not cfg.only_eval and not train:
        raise ConfigError(f"{cfg.source}: the training set ({names[0]}) is empty")
    if not val:
        raise ConfigError(f"{cfg.source}: the validation set ({names[1]}) is empty")
    return train, val, names


def _load(path, key, cfg):
    if not os.path.exists(path):
        raise ConfigError(f"{cfg.source}: {key}: {path} does not exist")
    return load_examples(path)


def build_tokenization(cfg: RunConfig, method, examples, saved: dict | None = None):
    kind = cfg.tokenization
    if saved is not None and saved.get("kind") != kind:
        raise ConfigError(f"{cfg.source}: tokenization {kind!r} differs from the checkpoint's {saved.get('kind')!r}")
    if kind == "gpt2":
        from coconut.tokenizer.text import TextTokenization
        return TextTokenization(with_pause=bool(method.needs_pause_token or (saved or {}).get("with_pause")))
    from coconut.tokenizer.symbolic import PRONTOQA_TOKENIZATIONS, PROSQA_TOKENIZATIONS
    if kind in PROSQA_TOKENIZATIONS:
        cls = PROSQA_TOKENIZATIONS[kind]
        if saved is not None:
            return cls.from_dict(saved)
        missing = next((i for i, ex in enumerate(examples) if not ex.has_graph), None)
        if missing is not None:
            raise ConfigError(f"{cfg.source}: tokenization {kind} needs ProsQA examples with their graph "
                              f"(idx_to_symbol); example {missing} of the data has none")
        return cls(max_nodes=max([32] + [len(ex.idx_to_symbol) for ex in examples]))
    cls = PRONTOQA_TOKENIZATIONS[kind]
    return cls.from_dict(saved) if saved is not None else cls.build([examples])


def saved_tokenization(directory: str | None) -> dict | None:
    """The tokenization recorded in a coconut checkpoint (None for other model directories)."""
    path = os.path.join(directory, "trainer_state.json") if directory else None
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("tokenization")


def tokenization_dict(tok) -> dict:
    if hasattr(tok, "to_dict"):
        return tok.to_dict()
    return {"kind": "gpt2", "with_pause": tok.pause_id is not None}


def model_shape(cfg: RunConfig, tok, checkpoint: str | None = None) -> GPT2Config:
    """The shape the model will have, read without loading any weights."""
    source = checkpoint or pretrained_dir(cfg)
    if source is None:
        return GPT2Config(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, vocab_size=tok.vocab_size,
                          n_positions=cfg.n_positions, dropout=cfg.dropout)
    return GPT2Config.from_hf_file(GPT2Config.hf_path(source))


def pretrained_dir(cfg: RunConfig) -> str | None:
    """The Hugging Face directory the weights come from (None: from scratch): a local
    directory, or a model_id's snapshot in the local hub cache."""
    if cfg.load_model_path:
        path, key = cfg.load_model_path, "load_model_path"
    elif cfg.init == "pretrained":
        path, key = cfg.model_id, "model_id"
    else:
        return None
    if path and os.path.isfile(os.path.join(path, "config.json")):
        return path
    hub_name = key == "model_id" and path and hub_cache.is_repo_id(path)
    cached = hub_cache.snapshot_dir(path) if hub_name else None
    if cached:
        return cached
    looked = f", nor in the Hugging Face cache ({' or '.join(hub_cache.repo_folders(path))})" if hub_name else ""
    raise ConfigError(f"{cfg.source}: {key}: {path!r} is not a local Hugging Face model directory "
                      f"(config.json + model.safetensors){looked}; download it first, e.g. `huggingface-cli "
                      "download openai-community/gpt2`, or point the key at a local directory")


def build_model(cfg: RunConfig, tok, checkpoint: str | None = None):
    source = checkpoint or pretrained_dir(cfg)
    if source is None:
        model = coconut.GPT2(model_shape(cfg, tok), seed=cfg.seed)
        wte, wpe = model.params["transformer.wte.weight"], model.params["transformer.wpe.weight"]
        wte *= cfg.embedding_std / INIT_STD      # the same draws as GPT-2's init, rescaled
        wpe *= cfg.embedding_std / INIT_STD
        if cfg.position_init == "sinusoidal":
            wpe[...] = sinusoidal_positions(*wpe.shape, scale=cfg.embedding_std)
        if cfg.token_init == "compositional":
            compose_token_rows(wte, tok.token_parts(), cfg.seed, std=cfg.embedding_std)
    else:
        model = coconut.GPT2.from_pretrained(source, seed=cfg.seed)
        if "dropout" in cfg.explicit:
            model.config.dropout = cfg.dropout
        if model.config.vocab_size < tok.vocab_size:   # GPT-2 itself: grow by <bot> <eot> <latent> (<pause>)
            model.add_thought_tokens(tok.bot_id, tok.eot_id, tok.latent_id, copy_from=GPT2_COPY_FROM)
            model.resize_vocab(tok.vocab_size - model.config.vocab_size, copy_from=GPT2_COPY_FROM)
        if model.config.vocab_size != tok.vocab_size:
            raise ConfigError(f"{cfg.source}: the model in {source} has {model.config.vocab_size} token rows, "
                              f"the tokenization needs {tok.vocab_size}")
    model.bot_id, model.eot_id, model.latent_id = tok.bot_id, tok.eot_id, tok.latent_id
    return model


def compose_token_rows(wte: np.ndarray, parts: dict[int, tuple[str, ...]], seed: int, std: float = INIT_STD) -> None:
    """Set the row of each token in `parts` to the sum of one random vector per part it
    names ("subject tumpus", "not", "object happy"), each vector drawn once, so tokens
    that share a part share its vector, scaled so that rows keep GPT-2's spread (std).
    A row a few chains train then starts out readable: what the model learns to read
    from "not" or "object happy" in common facts already holds for it."""
    names = sorted({name for token_parts in parts.values() for name in token_parts})
    rng = np.random.default_rng([seed, 1])      # not the stream the other weights came from
    vectors = dict(zip(names, rng.standard_normal((len(names), wte.shape[1]))))
    for token, token_parts in parts.items():
        wte[token] = std / math.sqrt(len(token_parts)) * sum(vectors[name] for name in token_parts)


def sinusoidal_positions(n_positions: int, n_embd: int, scale: float = INIT_STD) -> np.ndarray:
    """Row p: sin(p w_i), cos(p w_i) interleaved, w_i = 10000^(-2i/n_embd), times
    `scale` * sqrt(2) so that entries have GPT-2's init spread (0.02). The shift p -> p-1
    is the same rotation at every p, so a previous-token head (the first half of the
    edge look-up that graph questions need) is one linear map instead of a separate
    fit for each position, as with random rows."""
    p = np.arange(n_positions, dtype=np.float64)[:, None]
    w = 10000.0 ** (-np.arange(0, n_embd, 2, dtype=np.float64) / n_embd)
    out = np.empty((n_positions, n_embd), dtype=np.float64)
    out[:, 0::2] = np.sin(p * w)[:, :(n_embd + 1) // 2]
    out[:, 1::2] = np.cos(p * w)[:, :n_embd // 2]
    return (out * scale * np.sqrt(2.0)).astype(np.float32)


def check_lengths(method, tok, examples, name, epochs, n_positions: int, max_new_tokens: int | None = None):
    """Every sequence the run will build fits n_positions (with max_new_tokens: every
    generation prompt plus its new tokens). Raises naming the data set and example."""
    epochs = list(epochs)
    by_stage = {}
    for e in epochs:
        by_stage.setdefault(method.stage(e), e)   # one epoch per distinct stage suffices
    uniform = isinstance(method, StageCurriculum) and method.uniform_prob > 0
    for i, ex in enumerate(examples):
        try:
            for stage, epoch in by_stage.items():
                if max_new_tokens is not None:
                    n = len(method.prompt_ids(tok, ex, epoch)) + max_new_tokens
                    what = f"its prompt at epoch {epoch} plus max_new_tokens = {max_new_tokens} make {n} tokens"
                elif isinstance(method, StageCurriculum):
                    stages = {method.example_stage(ex, epoch, None) if not uniform else stage}
                    stages |= set(range(len(ex.steps) + 1)) if uniform else set()
                    n, s = max((len(method.layout(tok, ex, s).input_ids), s) for s in stages)
                    what = f"it has {n} tokens at stage {s} (epoch {epoch})"
                else:
                    n = len(method.sequence(tok, ex, epoch, random.Random(0)).input_ids)
                    what = f"it has {n} tokens at epoch {epoch}"
                if n > n_positions:
                    raise ConfigError(f"{name}: example {i} is too long: {what}, more than n_positions = "
                                      f"{n_positions} (question {ex.question[:50]!r}...)")
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{name}: example {i}: {e}") from None


# ----------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str, model, optimizer, state: dict, eos_id: int) -> str:
    """Write into a temporary directory, then rename it into place: an interrupted write
    leaves the previous checkpoint whole."""
    parent, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(parent, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, eos_token_id=eos_id)
    np.savez(os.path.join(tmp, "optimizer.npz"), **optimizer.state_dict())
    write_json_atomic(os.path.join(tmp, "trainer_state.json"), state)
    old = None
    if os.path.exists(path):
        old = os.path.join(parent, f".old-{name}-{os.getpid()}")
        os.rename(path, old)
    os.rename(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return path


def write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def list_checkpoints(save_dir: str) -> list[tuple[int, int, str]]:
    """(epoch, step, path) of every checkpoint in save_dir, oldest first."""
    found = []
    if os.path.isdir(save_dir):
        for entry in os.listdir(save_dir):
            path = os.path.join(save_dir, entry)
            if CHECKPOINT.match(entry) or entry == "checkpoint_last":
                try:
                    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
                        s = json.load(f)
                    found.append((s["epoch"], s["step_in_epoch"], path))
                except (OSError, ValueError, KeyError):
                    continue   # not a complete checkpoint
    return sorted(found)


def find_checkpoint(cfg: RunConfig, resume) -> str | None:
    """The checkpoint a run continues from: "latest", checkpoint_N for resume = N > 0
    (None when it does not exist and load_model_path gives the weights, as the
    reference's resume does), None for a fresh run."""
    found = list_checkpoints(cfg.save_dir)
    if resume == "latest":
        if not found:
            raise ConfigError(f"{cfg.source}: --resume: no checkpoint in {cfg.save_dir}")
        return found[-1][2]
    if not resume:
        return None
    path = os.path.join(cfg.save_dir, f"checkpoint_{resume}")
    if os.path.isfile(os.path.join(path, "trainer_state.json")):
        return path
    if cfg.load_model_path:
        return None
    have = ", ".join(os.path.basename(p) for _, _, p in found) or "none"
    raise ConfigError(f"{cfg.source}: resume: {resume}: {path} does not exist (checkpoints there: {have}); "
                      "set load_model_path to start epoch N from other weights")


def read_state(path: str, cfg: RunConfig) -> dict:
    try:
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}/trainer_state.json: unreadable ({e})") from None
    saved, now = state.get("config", {}), cfg.to_dict()
    changed = sorted(k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k])
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed[:4])
        raise ConfigError(f"{cfg.source}: cannot resume from {path}: the config changed ({detail}); an exact "
                          "resume needs the same settings")
    return state


def refuse_to_overwrite(save_dir: str) -> None:
    found = list_checkpoints(save_dir)
    if found:
        raise ConfigError(f"{save_dir} already holds checkpoints ({os.path.basename(found[-1][2])} is the latest); "
                          "continue it with --resume, or choose another name or save_path")
