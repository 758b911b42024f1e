"""The training loop: epochs, stages, optimizer resets, validation, checkpoints.

    result = train(load_config("coconut/configs/default.yaml"))
    result.best_accuracy, result.history[-1]["val_accuracy"]

`Trainer(config)` assembles the run (coconut.assembly: data, tokenization, lengths,
model, the checkpoint to resume), so everything that can fail does so first; only then
`run()` spends training time.

Randomness: the order and the per-example draws of epoch e come from
`random.Random(f"coconut/{seed}/train/{e}")`, dropout from the model's counter
`dropout_calls`. A checkpoint therefore holds all a resume needs: weights, AdamW
moments, the epoch and step reached, and that counter; a resumed run ends with the
same weights, bit for bit, as one that never stopped.

What it writes goes through coconut.checkpoints (the save directory's layout is there).

Under MPI (`mpirun -np N coconut train CONFIG`, see coconut.distributed) every rank runs
this loop on the same data; rank r computes the micro-batches j = r, r + N, ... of each
step (gradient_accumulation_steps must be a multiple of N) with the single-process
dropout seeds and grad_scale, one in-place all-reduce sums `model.grad_block`, and all
ranks take the same AdamW step: N processes follow the one-process trajectory up to
summation order, and a checkpoint written with one N resumes with another. Validation
is sharded by batch and gathered. Rank 0 alone writes checkpoints, metrics (to metrics.jsonl
and the sinks of `log_to`, coconut.metric_sinks) and progress output; Ctrl-C under mpirun
ends the job (resume from the last epoch's checkpoint).
"""
from __future__ import annotations

import math
import os
import random
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
from coconut import distributed
from coconut.assembly import assemble
from coconut.checkpoints import (clean_stale_temporaries, list_checkpoints, load_optimizer_state,
                                 refuse_to_overwrite, save_checkpoint, write_json_atomic)
from coconut.collate import collate
from coconut.collector import collector_paused, long_lived_frozen
from coconut.evaluate import EvalResult, evaluate
from coconut.epoch_data import EpochData
from coconut.metric_sinks import MetricLog
from coconut.phases import PhaseClock
from coconut.progress import Progress
from coconut.run_config import ConfigError, RunConfig
from coconut.run_lock import RunLock
from coconut.summary import summarize


class TrainingDiverged(ArithmeticError):
    """A loss or activation overflowed: the run stops, naming where and the checkpoint
    to go back to (with a lower lr, say)."""


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
    phase_seconds: dict = field(default_factory=dict)   # coconut.phases: setup and run() by phase
    summary: object = None        # a coconut.summary.RunSummary when run(summary=True)


def train(config: RunConfig, resume=None, method=None) -> TrainResult:
    return Trainer(config, resume=resume, method=method).run()


class Trainer:
    def __init__(self, config: RunConfig, resume=None, verbose: bool = True, world=None,
                 progress_every: float = 30.0, method=None):
        """resume: None (config.resume), an epoch N (checkpoint_N) or "latest".
        method: a method of your own, an object or a class (default: the config's).
        world: the process group (default `coconut.distributed.world()`).
        progress_every: seconds between progress lines when the output is no terminal
        (on one, tqdm bars)."""
        started = time.perf_counter()
        self.phases = PhaseClock()
        cfg = self.cfg = config
        self.world = world if world is not None else distributed.world()
        self.verbose = verbose and self.world.is_root
        self.progress_every = progress_every
        distributed.check_accumulation(cfg.gradient_accumulation_steps, self.world.size, cfg.source)
        distributed.configure_threads(self.world, cfg.threads)
        self.save_dir = cfg.save_dir
        self.metrics = MetricLog(cfg, self.save_dir)   # metrics.jsonl and log_to's sinks, checked now
        # data is drawn and encoded on every core a lone process has; MPI ranks work alone
        self.data_workers = coconut.get_num_threads() if self.world.size == 1 else 1
        run = self.assembled = assemble(cfg, "train", method=method, resume=resume, data_workers=self.data_workers)
        self.recipe, self.method, self.tok, self.model = run.recipe, run.method, run.tok, run.model
        self.train_set, self.val_set, self.thoughts = run.train_set, run.val_set, run.thoughts
        self.optimizer = coconut.AdamW(self.model, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                       weight_decay=cfg.weight_decay)
        self.epoch, self.step_in_epoch, self.global_step = run.first_epoch, 0, 0
        self.best_accuracy, self.best_epoch = -1.0, None
        self.tokens_trained = 0   # by this process's run(), resumed epochs not counted
        state = run.state
        if state:
            self.optimizer.load_state_dict(load_optimizer_state(run.checkpoint))
            self.model.dropout_calls = state["dropout_calls"]
            self.step_in_epoch, self.global_step = state["step_in_epoch"], state["global_step"]
            self.best_accuracy, self.best_epoch = state["best_accuracy"], state["best_epoch"]
        elif not cfg.debug:
            refuse_to_overwrite(self.save_dir)
        self.resumed_from = run.checkpoint
        self._stop = False
        self.data = EpochData(cfg, self.train_set, self.method, self.tok, self.model.config.n_positions,
                              self.data_workers)
        if self.world.size > 1:
            self._agree_across_ranks()
        self.phases.add("setup", time.perf_counter() - started)

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

    @property
    def precision(self) -> str:
        """What the epoch lines record: fp32, or bf16 and how this machine computes it."""
        return f"bf16 ({coconut.blas_info()['bf16']})" if self.model.bf16 else "fp32"

    # ------------------------------------------------------------------ the loop

    def run(self, summary: bool = False) -> TrainResult:
        """Train. summary: also fill `result.summary` (coconut.summary: final and best
        accuracy, time, tokens, the final model's k-sweep) unless the run was interrupted."""
        # rank 0 owns the run folder while it trains: a second run there is refused
        lock = RunLock(self.save_dir).acquire() if self.world.is_root else None
        try:
            if self.world.is_root:
                self.metrics.open()
            with long_lived_frozen():
                return self._run(summary)
        finally:
            self.data.close()
            try:
                self.metrics.close()
            finally:
                if lock is not None:
                    lock.release()

    def _run(self, summary: bool) -> TrainResult:
        cfg, result = self.cfg, TrainResult(self.model, save_dir=self.save_dir)
        start = time.perf_counter()
        if self.world.is_root:
            clean_stale_temporaries(self.save_dir)   # left by a run that was killed while it saved
        if self.cfg.bf16:
            self.say(f"mixed precision: {self.precision}")
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
                phases_before = dict(self.phases.seconds)
                train_loss, tokens_per_s = self.train_epoch(epoch)
                if self._stop:   # Ctrl-C inside the epoch: keep the steps done so far
                    path = self.save_checkpoint(f"checkpoint_{epoch}_step{self.step_in_epoch}")
                    self.say(f"stopped by Ctrl-C; resume with --resume (checkpoint {path})")
                    result.interrupted = True
                    break
                self.step_in_epoch = 0
                line = self.end_of_epoch(epoch, train_loss, tokens_per_s, phases_before)
                result.history.append(line)
                if self._stop:
                    self.say("stopped by Ctrl-C after the epoch's checkpoint; resume with --resume")
                    result.interrupted = True
                    break
        self.world.barrier()   # every rank returns once rank 0's files are written
        result.best_accuracy, result.best_epoch = self.best_accuracy, self.best_epoch
        result.seconds, result.tokens_trained = time.perf_counter() - start, self.tokens_trained
        result.phase_seconds = dict(self.phases.seconds)
        if summary and not result.interrupted:
            result.summary = summarize(self, result)
        return result

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg, model, method = self.cfg, self.model, self.method
        rng = random.Random(f"coconut/{cfg.seed}/train/{epoch}")
        with self.phases("data"), collector_paused(freeze=True):
            examples = self.training_set(epoch)
            order = list(range(len(examples)))
            rng.shuffle(order)
            sequences = self.sequences([examples[i] for i in order], epoch, rng)
        bs, acc = cfg.batch_size_training, cfg.gradient_accumulation_steps
        micro = [sequences[i:i + bs] for i in range(0, len(sequences), bs)]
        steps = [micro[i:i + acc] for i in range(0, len(micro), acc)]
        self.epoch_tokens = sum(len(s.input_ids) for s in sequences)   # the whole epoch's, resumed or not
        model.train()
        model.zero_grad()
        losses, tokens, start = [], 0, time.perf_counter()   # losses: (step, micro-batch, loss) of this rank
        progress = self.progress(f"epoch {epoch + 1}/{cfg.num_epochs} (stage {method.stage(epoch)}) training",
                                 len(steps), "step", initial=self.step_in_epoch)
        for step in range(self.step_in_epoch, len(steps)):
            self.optimizer.lr = cfg.lr * self.recipe.lr_scale(epoch + step / len(steps), cfg.num_epochs)
            try:
                losses += [(step, j, loss) for j, loss in self.train_step(steps[step])]
            except FloatingPointError as e:
                progress.close()
                raise self.diverged(f"epoch {epoch + 1}, step {step + 1} of {len(steps)}", e) from None
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
        """The examples epoch `epoch` trains on (coconut.epoch_data)."""
        return self.data.examples(epoch)

    def sequences(self, examples, epoch: int, rng: random.Random) -> list:
        """The training sequences of `examples` at `epoch`: the method lays each out, then
        the recipe may rewrite it; one stream of draws, every layout's before the rewrites'."""
        seqs = [self.method.sequence(self.tok, ex, epoch, rng) for ex in examples]
        return [self.recipe.training_sequence(self.tok, seq, rng) for seq in seqs]

    def train_step(self, micro_batches) -> list[tuple[int, float]]:
        """One optimizer step on `micro_batches` (lists of training sequences, in order).
        This rank computes micro-batches j = rank, rank + N, ... each exactly as the
        single process does: the reference's mean loss / gradient_accumulation_steps, and
        the dropout seed of its place in the run (`dropout_calls` = the step's first call
        + j). One in-place all-reduce sums the gradient block over the ranks; every rank
        then takes the same AdamW step. Returns this rank's (j, loss)."""
        model, tok, world, method = self.model, self.tok, self.world, self.method
        acc = self.cfg.gradient_accumulation_steps
        first_call, per_pass = model.dropout_calls, model.dropout_calls_per_pass * method.loss_calls
        done = []
        for j in distributed.shard(len(micro_batches), world.rank, world.size):
            model.dropout_calls = first_call + j * per_pass
            # The reference divides each micro-batch's mean loss by the accumulation steps.
            if method.trains_itself:
                with self.phases("step"):
                    loss = method.train_micro_batch(model, micro_batches[j], tok.eos_id, tok.latent_id,
                                                    self.thoughts, grad_scale=1.0 / acc)["ce_loss"]
            else:
                with self.phases("collate"):
                    b = collate(micro_batches[j], tok.eos_id, tok.latent_id)
                with self.phases("step"):
                    loss, _ = model.loss_and_count(b.input_ids, b.labels, b.attention_mask, b.position_ids,
                                                   thoughts=self.thoughts, grad_scale=1.0 / acc)
            done.append((j, loss))
        model.dropout_calls = first_call + len(micro_batches) * per_pass
        with self.phases("optimizer"):
            world.allreduce_sum_(model.grad_block)
            self.optimizer.step()
            model.zero_grad()
        return done

    def end_of_epoch(self, epoch: int, train_loss: float, tokens_per_s: float, phases_before: dict) -> dict:
        with self.phases("validation_loss"):
            try:
                val_loss = self.validation_loss(epoch)
            except FloatingPointError as e:
                raise self.diverged(f"the validation loss after epoch {epoch + 1}", e) from None
        with self.phases("generation"):
            ev = self.accuracy(epoch)
        improved = ev.accuracy > self.best_accuracy
        if improved:
            self.best_accuracy, self.best_epoch = ev.accuracy, epoch + 1
        line = {"epoch": epoch + 1, "stage": self.method.stage(epoch), "train_loss": train_loss,
                "val_loss": val_loss, "val_accuracy": ev.accuracy, "mean_new_tokens": ev.mean_new_tokens,
                "mean_thoughts": float(np.mean([r.n_thoughts for r in ev.records])),
                "tokens_per_s": tokens_per_s, "global_step": self.global_step, "lr": self.optimizer.lr,
                "optimizer_reset": self.method.optimizer_reset(epoch), "best_accuracy": self.best_accuracy,
                "precision": self.precision, "tokens": self.epoch_tokens}
        self.epoch = epoch + 1   # what a checkpoint of this moment resumes at
        if not self.cfg.debug and self.world.is_root:
            with self.phases("checkpoint"):
                if improved or not self.cfg.save_only_improve:
                    self.save_checkpoint(f"checkpoint_{epoch + 1}")
                else:
                    self.save_checkpoint("checkpoint_last")
                if improved:
                    write_json_atomic(os.path.join(self.save_dir, "best.json"), {
                        "epoch": epoch + 1, "accuracy": ev.accuracy, "checkpoint": f"checkpoint_{epoch + 1}"})
        line["seconds"] = self.phases.since(phases_before)   # this epoch's wall time by phase
        # when the epoch ended, and the padding-free tokens this process trained so far:
        # a run's time and data to an accuracy (benchmarks/time_to_accuracy.py)
        line["wall_time"], line["tokens_trained"] = time.time(), self.tokens_trained
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
                                                backward=False, thoughts=self.thoughts)
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
        if self.world.is_root:
            self.metrics.write(line)

    def diverged(self, where: str, error: FloatingPointError) -> TrainingDiverged:
        found = list_checkpoints(self.save_dir)
        last = f"the last good checkpoint is {found[-1][2]}" if found else "no checkpoint was written yet"
        return TrainingDiverged(f"training diverged at {where} ({error}); {last}")

    def save_checkpoint(self, name: str) -> str:
        state = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                 "dropout_calls": self.model.dropout_calls, "best_accuracy": self.best_accuracy,
                 "best_epoch": self.best_epoch, "tokenization": self.tok.to_dict(),
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
