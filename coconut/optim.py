"""AdamW identical to `torch.optim.AdamW`: decoupled weight decay, bias correction."""
from __future__ import annotations

import numpy as np

from . import _C


class AdamW:
    def __init__(self, model, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, decay_2d_only: bool = False, warmup_steps: int = 0):
        """decay_2d_only: decay weight matrices and embeddings only, not biases and
        LayerNorms. The paper's reference decays every parameter (the default).
        warmup_steps: step t (counted from 1 since the last reset) uses lr * min(1,
        t / warmup_steps), so a fresh optimizer does not open with full-size steps
        from its first, noisy moment estimates. 0 (the reference): constant lr."""
        if (lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas)
                or not isinstance(warmup_steps, int) or warmup_steps < 0):
            raise ValueError(f"AdamW: invalid hyperparameters lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}, warmup_steps={warmup_steps!r}")
        self.model = model
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.decay_2d_only = decay_2d_only
        self.warmup_steps = warmup_steps
        self.exp_avg = np.zeros_like(model.param_block)
        self.exp_avg_sq = np.zeros_like(model.param_block)
        self.step_count = 0
        self._segments = self._decay_segments()

    def _decay_segments(self) -> list[tuple[int, int, float]]:
        """Contiguous runs of the parameter block sharing one weight decay."""
        base = self.model.param_block.__array_interface__["data"][0]
        runs = []
        for view in self.model.params.values():
            start = (view.__array_interface__["data"][0] - base) // 4
            wd = self.weight_decay if (view.ndim >= 2 or not self.decay_2d_only) else 0.0
            runs.append((start, start + view.size, wd))
        runs.sort()
        merged = []
        for start, end, wd in runs:
            if merged and merged[-1][1] == start and merged[-1][2] == wd:
                merged[-1] = (merged[-1][0], end, wd)
            else:
                merged.append((start, end, wd))
        return merged

    def step(self) -> None:
        if self.exp_avg.shape != self.model.param_block.shape:
            raise RuntimeError("the model's parameters changed size (vocabulary resized): build a new AdamW")
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1.0 - b1 ** self.step_count
        bc2 = 1.0 - b2 ** self.step_count
        lr = self.current_lr()
        for start, end, wd in self._segments:
            _C.adamw(self.model.param_block, self.model.grad_block, self.exp_avg, self.exp_avg_sq,
                     start, end, lr, b1, b2, self.eps, wd, bc1, bc2)

    def current_lr(self) -> float:
        """The learning rate of step number `step_count` (after its increment)."""
        if self.warmup_steps and self.step_count < self.warmup_steps:
            return self.lr * self.step_count / self.warmup_steps
        return self.lr

    def reset(self) -> None:
        """Forgets the moments and the step count, as rebuilding the optimizer does."""
        self.exp_avg[...] = 0.0
        self.exp_avg_sq[...] = 0.0
        self.step_count = 0

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg.copy(), "exp_avg_sq": self.exp_avg_sq.copy(),
                "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        for key in ("exp_avg", "exp_avg_sq"):
            if state[key].shape != self.exp_avg.shape:
                raise ValueError(f"optimizer state {key} has shape {state[key].shape}, the model needs "
                                 f"{self.exp_avg.shape}")
        self.exp_avg[...] = state["exp_avg"]
        self.exp_avg_sq[...] = state["exp_avg_sq"]
        self.step_count = int(state["step_count"])
