"""Time to accuracy, as the MLPerf Training rules measure a system: wall time from the
command to the first validation at or above a target accuracy, everything included
(start-up, data, collation, steps, validation, checkpoints), for several seeds and a
perturbed floating-point path, each run required to get there.

    python benchmarks/time_to_accuracy.py --preset prosqa-cpu-thoughts --target 0.95
    python benchmarks/time_to_accuracy.py --preset prontoqa-cpu --target 0.99 --seeds 0,1,2 --paths own,Sandybridge
    python benchmarks/time_to_accuracy.py --preset prontoqa-cpu --target 0.99 --paths own --perturbed Haswell

Each run is `coconut train PRESET --set seed=S --set threads=T` in a fresh process, the
clock started just before it. A path is OpenBLAS's kernel set: `own` unsets
OPENBLAS_CORETYPE in the run's command (OpenBLAS's own choice for this CPU, whatever the
environment pins), any other name sets it (`Sandybridge`, `Haswell`: a perturbed path).
Per run: the seconds to the first epoch at target whose validation used as many thoughts
as the final epoch's (the stages past max_latent_stage lay out the same; a language
stage at target is a CoT model's result, not one with thoughts) (None: never; the first
epoch of any stage at target is recorded beside it), whether the final
epoch holds it, the padding-free tokens and the model FLOPs (forward and backward,
benchmarks/common.py) to that epoch, and the share of each phase of the whole run.
Record: benchmarks/results/time_to_accuracy_PRESET.json.

The floor: the FLOPs the core performs (benchmarks/preset_step.py's count: the rows it
keeps, attention per pass, the LM head at supervised positions) over the epochs to
target, at this machine's sgemm rate on the run's threads: no run of that recipe on this
machine can reach the target sooner. Each stage's FLOPs are counted on the first epoch's
questions at that stage's first epoch. `--floor` prints the floor to the first epoch of
each stage and to the end, and trains nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import coconut
from common import cpu_name, sgemm_gflops, train_flops_per_token, write_record
from preset_step import epoch_batches, performed_flops, preset_trainer


def run_once(preset: str, seed: int, path: str, threads: int, sets: list[str], out: str) -> dict:
    name = f"{preset}-seed{seed}-{path}"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if path != "own":
        env["OPENBLAS_CORETYPE"] = path
    cmd = [sys.executable, "-m", "coconut", "train", preset, "--no-summary", "--set", f"seed={seed}",
           "--set", f"threads={threads}", "--set", f"save_path={out}", "--set", f"name={name}",
           *[a for s in sets for a in ("--set", s)]]
    started = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(out, name, "metrics.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if '"val_accuracy"' in line]
    return {"seed": seed, "path": path, "started": started, "ended": ended, "epochs": lines,
            "kernels": json.loads(subprocess.run([sys.executable, "-c", "import coconut, json; "
                                                  "print(json.dumps(coconut.blas_info()['core']))"],
                                                 env=env, capture_output=True, text=True).stdout)}


def epoch_flops(preset: str, sets: list[str]) -> tuple[list[float], list[int]]:
    """The core's performed FLOPs of each epoch of the recipe (see the module's doc), and
    each epoch's stage."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer, examples = preset_trainer(preset, [*sets, "threads=1"], tmp)
        method, config = trainer.method, trainer.model.config
        targs = trainer.tok.thought_spec(method.thought_mode).core_args()
        stages = [method.stage(epoch) for epoch in range(trainer.cfg.num_epochs)]
        by_stage: dict = {}
        for epoch, stage in enumerate(stages):
            if stage not in by_stage:
                by_stage[stage] = sum(performed_flops(b, config, targs)
                                      for b in epoch_batches(trainer, examples, epoch))
        return [by_stage[stage] for stage in stages], stages


def print_floor(per_epoch: list[float], stages: list[int], gflops: float) -> None:
    """The floor to the end of each stage's first epoch and of the run."""
    for epoch, stage in enumerate(stages):
        if epoch == 0 or stage != stages[epoch - 1]:
            done = sum(per_epoch[:epoch + 1])
            print(f"  to the end of epoch {epoch + 1} (stage {stage}'s first): {done / 1e12:.1f} TFLOP, "
                  f"{done / (gflops * 1e9) / 60:.2f} min")
    print(f"  the whole run ({len(stages)} epochs): {sum(per_epoch) / 1e12:.1f} TFLOP, "
          f"{sum(per_epoch) / (gflops * 1e9) / 60:.2f} min")


def summarise(run: dict, target: float, flops_per_token: float) -> dict:
    lines = run["epochs"]
    final_thoughts = lines[-1]["mean_thoughts"]
    reached = next((line for line in lines
                    if line["mean_thoughts"] == final_thoughts and line["val_accuracy"] >= target), None)
    any_stage = next((line for line in lines if line["val_accuracy"] >= target), None)
    phases: dict = {}
    for line in lines:
        for phase, seconds in line["seconds"].items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    wall = run["ended"] - run["started"]
    return {"seed": run["seed"], "path": run["path"], "kernels": run["kernels"],
            "seconds_to_target": reached["wall_time"] - run["started"] if reached else None,
            "epoch_at_target": reached["epoch"] if reached else None,
            "epoch_at_target_any_stage": any_stage["epoch"] if any_stage else None,
            "tokens_to_target": reached["tokens_trained"] if reached else None,
            "flops_to_target": reached["tokens_trained"] * flops_per_token if reached else None,
            "final_accuracy": lines[-1]["val_accuracy"], "final_holds": lines[-1]["val_accuracy"] >= target,
            "best_accuracy": max(line["val_accuracy"] for line in lines), "wall_seconds": wall,
            "tokens": lines[-1]["tokens_trained"],
            # by phase; "start-up" is the rest: the interpreter, imports and the trainer's setup
            "share": {**{k: v / wall for k, v in sorted(phases.items())},
                      "start-up": 1 - sum(phases.values()) / wall},
            "accuracy_by_epoch": [line["val_accuracy"] for line in lines]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True)
    ap.add_argument("--target", type=float, required=True, help="validation accuracy, e.g. 0.95")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--paths", default="own,Sandybridge", help="own (OpenBLAS's choice) or OPENBLAS_CORETYPE names")
    ap.add_argument("--perturbed", default=None, help="a kernel set for one more run of the first seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config overrides for every run")
    ap.add_argument("--record", default=None)
    ap.add_argument("--floor", action="store_true", help="print the recipe's floor on this machine; train nothing")
    args = ap.parse_args()
    from coconut.run_config import load_config
    cfg = load_config(args.preset, args.set)
    # the blocks and attention per token; the LM head, computed at supervised positions
    # only, is left out of the count
    flops = train_flops_per_token(cfg.n_layer, cfg.n_embd, vocab=0, T=cfg.n_positions)
    # the machine's floor: FLOPs to target at this run's own sgemm rate on its threads
    coconut.set_num_threads(args.threads)
    gflops = sgemm_gflops()
    per_epoch, stages = epoch_flops(args.preset, args.set)
    if args.floor:
        print(f"{args.preset}: the floor at {gflops:.0f} GFLOP/s (sgemm, {args.threads} threads)")
        print_floor(per_epoch, stages, gflops)
        return
    rows = []
    with tempfile.TemporaryDirectory() as out:
        seeds = [int(s) for s in args.seeds.split(",")]
        runs = [(seed, path) for seed in seeds for path in args.paths.split(",")]
        for seed, path in runs + ([(seeds[0], args.perturbed)] if args.perturbed else []):
            row = summarise(run_once(args.preset, seed, path, args.threads, args.set, out), args.target, flops)
            row["sgemm_floor_seconds"] = row["flops_to_target"] / (gflops * 1e9) if row["flops_to_target"] else None
            # epochs count from 1 in the metrics
            row["performed_flops_to_target"] = sum(per_epoch[:row["epoch_at_target"]]) if row["epoch_at_target"] else None
            row["performed_floor_seconds"] = row["performed_flops_to_target"] / (gflops * 1e9) \
                if row["epoch_at_target"] else None
            rows.append(row)
            at = "never" if row["seconds_to_target"] is None else \
                f"{row['seconds_to_target'] / 60:.1f} min (epoch {row['epoch_at_target']})"
            print(f"seed {seed} {path} ({row['kernels']}): {args.target:.0%} at {at}; final "
                  f"{row['final_accuracy']:.3f} ({'holds' if row['final_holds'] else 'does not hold'}); "
                  f"{row['wall_seconds'] / 60:.1f} min in all", flush=True)
    times = [r["seconds_to_target"] for r in rows]
    record = {"preset": args.preset, "target": args.target, "threads": args.threads, "sets": args.set,
              "flops_per_token_blocks_and_attention": flops, "cpus": os.cpu_count(),
              "cpu": cpu_name(), "sgemm_gflops": gflops,
              "every_run_reached": all(t is not None for t in times),
              "worst_seconds_to_target": max(times) if all(t is not None for t in times) else None,
              "runs": rows}
    print("record:", write_record(args.record or f"time_to_accuracy_{args.preset}", record))


if __name__ == "__main__":
    main()
