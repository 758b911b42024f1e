"""Data-parallel training: optimizer steps per second with 1 process x 2 threads against
2 MPI processes x 1 thread, and the all-reduce's share of a step.

    python benchmarks/data_parallel.py [--steps 3] [--repeats 2] [--rounds 3] [--ranks 2] [--threads 2]
    python benchmarks/data_parallel.py --netns --shape gpt2 --batch 1 --steps 2 --repeats 1 --rounds 2

The step is the trainer's own (`Trainer.train_step`: the rank's micro-batches through
the C core, one in-place all-reduce of `model.grad_block`, AdamW) on ProsQA at Coconut
stage 3 (three continuous thoughts per step), a global batch of 2 micro-batches x
--batch examples. Shapes: `small` (4 layers, 256 wide, 4 heads, the symbolic
tokenization, dropout 0.1), `prosqa-cpu` (the CPU presets': 2 layers, 128 wide, 4 heads,
edge tokens, no dropout) or `gpt2` (GPT-2 small: 12 layers, 768 wide, 12 heads, the
GPT-2 tokenization, 50257 tokens + 3 Coconut ones, dropout 0.1). The script runs itself twice: plainly with
--threads threads, and under `mpirun -np RANKS` with threads / ranks each: on this
machine (mpirun binds each rank to a core), or with --netns one rank on each of RANKS
emulated hosts (tests/netns_hosts.py: network namespaces, TCP over veth links; needs
root). The all-reduce's effective bandwidth is the gradient block's bytes over the time
of one all-reduce with every rank ready.
Results: benchmarks/results/data_parallel[_netns][_gpt2].json. Needs mpirun and mpi4py.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from common import SHAPES, write_record

import coconut
from coconut import distributed
from coconut.run_config import config_from_dict
from coconut.train import Trainer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import netns_hosts  # noqa: E402

# what goes with each model shape: the tokenization (so the vocabulary), room for
# ProsQA's sequences in it, and the dropout (the CPU presets train without)
DATA = {"small": dict(tokenization="prosqa_symbolic", n_positions=512, dropout=0.1),
        "gpt2": dict(tokenization="gpt2", n_positions=1024, dropout=0.1),
        "prosqa-cpu": dict(tokenization="prosqa_edge_tokens", n_positions=256, dropout=0.0)}
MICRO, STAGE = 2, 3


def worker(args) -> None:
    w = distributed.world()
    cfg = config_from_dict(dict(
        generate={"dataset": "prosqa", "n": MICRO * args.batch, "val_n": 1, "seed": 0}, init="scratch",
        coconut=True, c_thought=1, epochs_per_stage=1, max_latent_stage=STAGE, pad_latent_to_max=True,
        num_epochs=STAGE + 1, batch_size_training=args.batch, gradient_accumulation_steps=MICRO, lr=1e-4,
        threads=args.threads, debug=True, save_path=args.tmp, **SHAPES[args.shape], **DATA[args.shape]),
        source="benchmark")
    trainer = Trainer(cfg, verbose=False, world=w)
    rng = random.Random(0)
    seqs = [trainer.method.sequence(trainer.tok, ex, STAGE, rng) for ex in trainer.train_set]
    group = [seqs[i:i + args.batch] for i in range(0, len(seqs), args.batch)]
    trainer.model.train()
    trainer.train_step(group)   # warm-up
    best = None
    for _ in range(args.repeats):
        w.barrier()
        reduce_before, t = w.allreduce_seconds, time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(group)
        w.barrier()
        dt = time.perf_counter() - t
        if best is None or dt < best[0]:
            best = (dt, w.allreduce_seconds - reduce_before)
    # the all-reduce alone, every rank ready (the in-step figure also holds waiting for
    # the slower rank)
    pure = []
    for _ in range(10):
        w.barrier()
        t = time.perf_counter()
        w.allreduce_sum_(trainer.model.grad_block)
        pure.append(time.perf_counter() - t)
    trainer.model.zero_grad()
    dt, reduce_s = best
    record = {"ranks": w.size, "threads_per_rank": coconut.get_num_threads(), "steps": args.steps,
              "step_s": dt / args.steps, "steps_per_s": args.steps / dt,
              "tokens_per_step": sum(len(s.input_ids) for s in seqs),
              "allreduce_in_step_s": reduce_s / args.steps, "allreduce_pure_s": min(pure) if w.size > 1 else 0.0,
              "gradient_mb": trainer.model.grad_block.nbytes / 1e6, "parameters": trainer.model.num_parameters,
              "vocab": trainer.model.config.vocab_size}
    if w.is_root:
        with open(args.out, "w") as f:
            json.dump(record, f)


def launch(args, ranks: int, threads: int, out: str, tmp: str, hosts=None) -> dict:
    """One run of the worker: plainly (ranks = 1), under this machine's mpirun, or with
    one rank on each emulated host of `hosts`."""
    me = os.path.abspath(__file__)
    cmd = [sys.executable, me, "--worker", "--threads", str(threads), "--steps", str(args.steps),
           "--repeats", str(args.repeats), "--shape", args.shape, "--batch", str(args.batch), "--out", out,
           "--tmp", tmp]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if ranks > 1:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            sys.exit("data_parallel: mpirun not found (apt-get install openmpi-bin libopenmpi-dev; pip install mpi4py)")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd = [*(hosts.mpirun(mpirun) if hosts else [mpirun]), "-np", str(ranks), *args.mpirun_args.split()] + cmd
    else:
        env["COCONUT_MPI"] = "0"
    subprocess.run(cmd, check=True, env=env)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two set-ups (best kept)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="all threads: one process, or shared by the ranks")
    ap.add_argument("--mpirun-args", default="", help="extra mpirun options, e.g. '--bind-to none'")
    ap.add_argument("--shape", choices=sorted(DATA), default="small")
    ap.add_argument("--batch", type=int, default=16, help="examples per micro-batch")
    ap.add_argument("--netns", action="store_true", help="one rank on each of RANKS emulated hosts, over TCP")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} on {os.cpu_count()} cores")
    # The two set-ups alternate, --rounds times, and each keeps its best round: on a
    # machine shared with other work the least disturbed run is the fairest figure.
    if args.netns and netns_hosts.unavailable():
        sys.exit(f"data_parallel: --netns: {netns_hosts.unavailable()}")
    ones, manys = [], []
    hosts = netns_hosts.Hosts(args.ranks, prefix=f"coconut{os.getpid()}") if args.netns else None
    with tempfile.TemporaryDirectory() as tmp, hosts or contextlib.nullcontext():
        for _ in range(args.rounds):
            ones.append(launch(args, 1, args.threads, os.path.join(tmp, "one.json"), tmp))
            manys.append(launch(args, args.ranks, max(1, args.threads // args.ranks), os.path.join(tmp, "many.json"),
                                tmp, hosts))
    one, many = (max(rs, key=lambda r: r["steps_per_s"]) for rs in (ones, manys))
    rows = [one, many]
    print(f"{'ranks x threads':>16}  {'step (s)':>9}  {'steps/s':>8}  {'all-reduce in step':>19}  {'pure':>8}")
    for r in rows:
        share = r["allreduce_in_step_s"] / r["step_s"]
        print(f"{r['ranks']:>10} x {r['threads_per_rank']:<3}  {r['step_s']:>9.3f}  {r['steps_per_s']:>8.3f}  "
              f"{r['allreduce_in_step_s'] * 1e3:>9.2f} ms {share:>6.1%}  {r['allreduce_pure_s'] * 1e3:>6.2f} ms")
    speedup = many["steps_per_s"] / one["steps_per_s"]
    print(f"{args.ranks} ranks x {many['threads_per_rank']} thread(s) / 1 rank x {one['threads_per_rank']} threads: "
          f"{speedup:.2f}x steps per second; gradient block {many['gradient_mb']:.1f} MB, "
          f"{many['tokens_per_step']} tokens per step")
    bandwidth = many["gradient_mb"] / many["allreduce_pure_s"] / 1e3
    print(f"all-reduce of the {many['gradient_mb']:.1f} MB block, every rank ready: {bandwidth:.2f} GB/s")
    name = "data_parallel" + ("_netns" if args.netns else "") + ("" if args.shape == "small" else f"_{args.shape}")
    path = write_record(name, {
        "shape": {**SHAPES[args.shape], "vocab": many["vocab"], **DATA[args.shape]},
        "global_batch": f"{MICRO} micro-batches x {args.batch}", "stage": STAGE,
        "one_process": one, "mpi": many, "speedup": speedup,
        "allreduce_share_in_step": many["allreduce_in_step_s"] / many["step_s"],
        "allreduce_share_pure": many["allreduce_pure_s"] / many["step_s"],
        "allreduce_bandwidth_gb_s": bandwidth,
        "hosts": (f"{args.ranks} emulated hosts (network namespaces, TCP over veth; tests/netns_hosts.py), "
                  f"sharing this machine's {os.cpu_count()} cores") if args.netns else "this machine",
        "mpirun": " ".join(hosts.mpirun()) if hosts else "mpirun",
        "mpirun_args": args.mpirun_args, "mpi_library": _mpi_library(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "rounds": args.rounds,
        "steps_per_s_every_round": {"one_process": [r["steps_per_s"] for r in ones],
                                    "mpi": [r["steps_per_s"] for r in manys]}})
    print(f"wrote {path}")


def _mpi_library() -> str:
    try:
        out = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0] if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
