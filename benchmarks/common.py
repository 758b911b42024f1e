"""Shared pieces of the benchmarks: timing, the machine's sgemm rate through the core's
own matrix product, thread settings for both sides, and the JSON record."""
from __future__ import annotations

import glob
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import coconut  # noqa: E402
from coconut import _C  # noqa: E402


# the model shapes the benchmarks report: GPT-2 small, a CPU-sized one, and the
# prosqa-cpu preset's (with a vocabulary of 1065 symbols there: --vocab 1065)
SHAPES = {"gpt2": dict(n_layer=12, n_head=12, n_embd=768), "small": dict(n_layer=4, n_head=4, n_embd=256),
          "prosqa-cpu": dict(n_layer=2, n_head=4, n_embd=128)}


def best_of(fn, repeats: int, clock=time.perf_counter) -> float:
    """Minimum time of `repeats` calls after one warm-up (repeats = 0: one call, no
    warm-up): the least disturbed run on a shared machine. `clock` is wall time, or
    time.process_time for one thread on a machine so shared that even the minimum waits
    for other jobs (the process's CPU time leaves that out)."""
    if repeats == 0:
        t = clock()
        fn()
        return clock() - t
    fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def sgemm_gflops(n: int = 2048, reps: int = 5, cpu_time: bool = False) -> float:
    """The core's sgemm rate: its own wall timing, or (cpu_time) the process's CPU time
    around the call, which then also counts its one warm-up product."""
    if not cpu_time:
        return 2.0 * n ** 3 * reps / min(_C.sgemm_seconds(n, reps) for _ in range(3)) / 1e9

    def seconds():
        t = time.process_time()
        _C.sgemm_seconds(n, reps)
        return time.process_time() - t
    return 2.0 * n ** 3 * (reps + 1) / min(seconds() for _ in range(3)) / 1e9


def set_threads(n: int) -> None:
    coconut.set_num_threads(n)
    import torch
    torch.set_num_threads(n)


def train_flops_per_token(n_layer: int, n_embd: int, vocab: int, T: int, supervised_fraction: float = 1.0) -> float:
    """Forward + backward FLOPs per token: 6 per weight of the blocks, 6 per LM-head
    weight at supervised positions, and the attention products (QK^T and PV, causal,
    so half of T keys on average)."""
    block = 12 * n_layer * n_embd * n_embd
    head = vocab * n_embd * supervised_fraction
    attention = 6 * n_layer * n_embd * T  # 2 products x 2 flops x T/2 keys, x3 for backward
    return 6 * block + 6 * head + attention


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else the machine's architecture)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def write_record(name: str, record: dict) -> str:
    record = {"benchmark": name, "machine": platform.processor() or platform.machine(),
              "blas": coconut.blas_info(), "time": time.strftime("%Y-%m-%d %H:%M:%S"), **record}
    out_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    return path


def run_config(run_dir: str) -> dict:
    """The config the run trained with, as its last checkpoint saved it (a shipped model's
    folder is one checkpoint)."""
    checkpoints = glob.glob(os.path.join(run_dir, "checkpoint_*"))
    last = max(checkpoints, key=lambda p: int(p.rsplit("_", 1)[1])) if checkpoints else run_dir
    with open(os.path.join(last, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)["config"]
