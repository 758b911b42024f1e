"""What a training run came to, in a few lines (`coconut train` prints it at the end).

    trainer = Trainer(cfg)
    result = trainer.run(summary=True)          # or: summarize(trainer, trainer.run())
    print(result.summary.table())

For a method with thoughts (continuous, soft, Jacobi, or pause as thought) it holds the
k-sweep of the final model: accuracy and new tokens with k = 0..the method's most
thoughts, run as the method runs them (`method.thought_spec`).
"""
from __future__ import annotations

from dataclasses import dataclass, field



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
        return "\n".join(lines)


def summarize(trainer, result) -> RunSummary:
    """The summary of `result` (what `trainer.run()` returned). Under MPI every rank
    calls it: the k-sweep's decoding is shared over the ranks."""
    final = result.history[-1] if result.history else None
    method = trainer.method
    sweep = {}
    k_max = method.max_thoughts
    if method.thought_mode != "none" and k_max > 0:
        runs = trainer.assembled.k_sweep(range(k_max + 1), comm=trainer.world)   # the trained model, in place
        sweep = {k: (r.accuracy, r.mean_new_tokens) for k, r in runs.items()}
    return RunSummary(final_accuracy=final["val_accuracy"] if final else None,
                      final_epoch=final["epoch"] if final else None,
                      best_accuracy=result.best_accuracy if result.best_epoch is not None else None,
                      best_epoch=result.best_epoch, minutes=result.seconds / 60, tokens_trained=result.tokens_trained,
                      thoughts=method.thought_mode, k_sweep=sweep)
