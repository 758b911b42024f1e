"""Where a phase of a run stands (training steps, validation batches, generation).

On a terminal this is a tqdm bar. Elsewhere (output piped to a log, CI, nohup, a
notebook) tqdm stays silent, so instead a plain line is printed every `every` seconds:

    epoch 3/25 training: step 120/500, loss 0.8123, 2140 tokens/s, elapsed 1:02:10, ETA 3:17:05

    p = Progress("epoch 3/25 training", total=500, unit="step", every=30.0)
    p.advance(120, loss=0.8123, tokens=4096)     # 120 done; 4096 more tokens since the last call
    p.close()
"""
from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm


def on_terminal() -> bool:
    """Whether tqdm's bars (written to stderr) are seen by a person at a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def clock(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour ("?" when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, m = s // 3600, s // 60 % 60
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Progress:
    def __init__(self, desc: str, total: int, *, unit: str = "step", every: float = 30.0, initial: int = 0,
                 enabled: bool = True):
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        self.plain = enabled and not on_terminal()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                        disable=not enabled or self.plain)
        self.done = self.first = initial
        self.tokens, self.recent_losses = 0, []
        self.start = self.last_line = time.perf_counter()

    def advance(self, done: int, *, total: int | None = None, loss: float | None = None, tokens: int = 0) -> None:
        """`done` units of `total` are finished; `tokens` more were processed since the last call."""
        if total is not None:
            self.total = self.bar.total = total
        self.bar.update(done - self.done)
        self.done, self.tokens = done, self.tokens + tokens
        if loss is not None:
            self.recent_losses.append(loss)
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{self.tokens_per_s():.0f}", refresh=False)
        now = time.perf_counter()
        if self.plain and now - self.last_line >= self.every:
            print(self.line(now), flush=True)   # flushed: a log file is block-buffered
            self.last_line, self.recent_losses = now, []

    def tokens_per_s(self, now: float | None = None) -> float:
        return self.tokens / max((now or time.perf_counter()) - self.start, 1e-9)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        parts = [f"{self.desc}: {self.unit} {self.done}/{self.total}"]
        if self.recent_losses:   # the mean since the previous line
            parts.append(f"loss {sum(self.recent_losses) / len(self.recent_losses):.4f}")
        parts += [f"{self.tokens_per_s(now):.0f} tokens/s", f"elapsed {clock(elapsed)}", f"ETA {clock(eta)}"]
        return ", ".join(parts)

    def close(self) -> None:
        self.bar.close()
