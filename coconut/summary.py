"""What a training run came to, in a few lines (`coconut train` prints it at the end).

    trainer = Trainer(cfg)
    result = trainer.run(summary=True)          # or: summarize(trainer, trainer.run())
    print(result.summary.table())

For a method with thoughts (continuous, soft, Jacobi, or pause as thought) it holds the
k-sweep of the final model: accuracy and new tokens with k = 0..the method's most
thoughts, run as the method runs them (`method.thought_spec`). On ProsQA, for thoughts
fed back (continuous, soft, Jacobi), also the latent probe of the final model: per
thought t, the mean value of the layer of the graph the search has reached (the nodes
at distance t - 1 from the root) on a shortest path to the target, off it, and of every
other node (`coconut eval --probe` prints the whole table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from coconut.thought_spec import FED_BACK


@dataclass
class RunSummary:
    final_accuracy: float | None     # validation accuracy after the last epoch trained (None: none trained)
    final_epoch: int | None
    best_accuracy: float | None
    best_epoch: int | None
    minutes: float                   # wall time of run()
    tokens_trained: int              # padding-free tokens of the steps run() took
    thoughts: str = "none"           # the method's thought mode
    k_sweep: dict = field(default_factory=dict)   # {k: (accuracy, mean new tokens)} of the final model
    probe: dict = field(default_factory=dict)     # {t: (on path, off path, rest)} of the reached layer

    def table(self) -> str:
        def accuracy(value, epoch):
            return "-" if value is None else f"{value:.4f} (epoch {epoch})"
        lines = ["run summary",
                 f"  final validation accuracy  {accuracy(self.final_accuracy, self.final_epoch)}",
                 f"  best validation accuracy   {accuracy(self.best_accuracy, self.best_epoch)}",
                 f"  time                       {self.minutes:.1f} minutes",
                 f"  tokens trained             {self.tokens_trained:,}"]
        if self.k_sweep:
            lines += [f"  final model with k {self.thoughts} thoughts at inference:",
                      f"  {'k':>5}  {'accuracy':>8}  {'new tokens':>10}"]
            lines += [f"  {k:>5}  {acc:>8.4f}  {new:>10.2f}" for k, (acc, new) in sorted(self.k_sweep.items())]
        if self.probe:
            def value(v):
                return "-" if v is None or math.isnan(v) else f"{v:.3f}"
            lines += ["  latent probe of the final model: the value of the nodes thought t has reached "
                      "(distance t - 1 from the root)",
                      f"  {'t':>5}  {'on path':>8}  {'off path':>8}  {'rest':>8}"]
            lines += [f"  {t:>5}  {value(on):>8}  {value(off):>8}  {value(rest):>8}"
                      for t, (on, off, rest) in sorted(self.probe.items())]
        return "\n".join(lines)


def summarize(trainer, result) -> RunSummary:
    """The summary of `result` (what `trainer.run()` returned). Under MPI every rank
    calls it: the k-sweep's decoding is shared over the ranks."""
    final = result.history[-1] if result.history else None
    method, run = trainer.method, trainer.assembled   # the trained model, in place
    sweep = {}
    k_max = method.max_thoughts
    if method.thought_mode != "none" and k_max > 0:
        runs = run.k_sweep(range(k_max + 1), comm=trainer.world)
        sweep = {k: (r.accuracy, r.mean_new_tokens) for k, r in runs.items()}
    probe = {}
    if method.thought_mode in FED_BACK and k_max > 0 and run.val_set[0].has_graph:
        from coconut.analysis.latent_probe import probe_dataset
        reached = probe_dataset(run.model, run.tok, run.val_set, k_max, depth_offset=0, thoughts=run.thoughts)
        probe = {t + 1: (r["optimal_mean"], r["off_path_mean"], r["rest_mean"]) for t, r in reached.items()}
    return RunSummary(final_accuracy=final["val_accuracy"] if final else None,
                      final_epoch=final["epoch"] if final else None,
                      best_accuracy=result.best_accuracy if result.best_epoch is not None else None,
                      best_epoch=result.best_epoch, minutes=result.seconds / 60, tokens_trained=result.tokens_trained,
                      thoughts=method.thought_mode, k_sweep=sweep, probe=probe)
