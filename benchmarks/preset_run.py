"""Whole preset runs, end to end: wall time, tokens/s, and where the time went (setup,
data, collation, the core's step, the optimizer, validation loss, generation,
checkpoints), for the CPU presets' Coconut and CoT rows.

    python benchmarks/preset_run.py [--rows prosqa-cpu:coconut,prontoqa-cpu:cot] [--epochs 4] [--threads 2]
    python benchmarks/preset_run.py --checkout /path/to/other/clone --record preset_run_full_grid_core
    python benchmarks/preset_run.py --against /path/to/earlier/clone --rounds 2
    python benchmarks/preset_run.py --rows prosqa-cpu-thoughts:coconut --set data_ahead=false

Each row is `coconut train PRESET` in a fresh process for --epochs epochs, on the
preset's full data, with its stage schedule compressed to one epoch per stage (stage 0
in epoch 1, then stages 1, 2, 3, ...), so that a short run times the continuous-thought
passes of several stages as well as the language stage. --checkout runs another copy
of the repository (built in place) the same way: a before/after comparison on the same
machine in the same hour. --against runs each row in that copy and in --checkout in
turn, --rounds times, so that both see the same drift of a shared machine; each
checkout's row keeps its fastest round, and the record (by default preset_run_against.json) gives
the ratio. --set overrides a key of every row's configuration. Results:
benchmarks/results/preset_run.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = "prosqa-cpu:coconut,prosqa-cpu:cot,prontoqa-cpu:coconut,prontoqa-cpu:cot"
# the CoT rows as the README runs them
ROW_SETS = {"prontoqa-cpu:cot": ["recipe.predict_past_eot=false"]}
COMPRESSED = ["epochs_per_stage=1", "first_stage_epochs=1"]


def worker(preset: str, sets: list[str]) -> None:
    """One row in this process: prints a JSON line with its figures."""
    import coconut
    from coconut.run_config import RunConfig, load_config
    from coconut.train import Trainer
    start = time.perf_counter()
    if not hasattr(RunConfig, "first_stage_epochs"):   # a checkout from when it was a recipe option
        sets = [s.replace("first_stage_epochs=", "recipe.first_stage_epochs=") for s in sets]
    cfg = load_config(preset, sets)
    trainer = Trainer(cfg, verbose=False)
    result = trainer.run()
    wall = time.perf_counter() - start
    assert os.path.dirname(coconut.__file__).startswith(os.environ["PYTHONPATH"]), coconut.__file__
    print(json.dumps({"wall_s": wall, "tokens": result.tokens_trained, "phase_seconds": getattr(result, "phase_seconds", {}),
                      "accuracy": [line["val_accuracy"] for line in result.history],
                      "train_loss": [line["train_loss"] for line in result.history],
                      "threads": coconut.get_num_threads(), "blas": coconut.blas_info()["core"]}))


def run_row(row: str, epochs: int, threads: int, checkout: str, save_dir: str, extra: list[str]) -> dict:
    preset, method = row.split(":")
    sets = [f"method={method}", f"name={preset}-{method}", f"num_epochs={epochs}", f"threads={threads}",
            f"save_path={save_dir}", *COMPRESSED, *ROW_SETS.get(row, []), *extra]
    env = {**os.environ, "PYTHONPATH": checkout}
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import preset_run; "
            f"preset_run.worker({preset!r}, {sets!r})")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=save_dir, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{row} failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    phases = figures["phase_seconds"]
    figures.update(row=row, epochs=epochs, tokens_per_s=figures["tokens"] / figures["wall_s"],
                   share={k: v / figures["wall_s"] for k, v in phases.items()},
                   other_s=figures["wall_s"] - sum(phases.values()))
    return figures


def main():
    from common import write_record   # not at the top: it puts this checkout first on sys.path
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=ROWS, help="PRESET:METHOD, comma-separated")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="the presets' default: every core (2 here)")
    ap.add_argument("--checkout", default=os.path.dirname(HERE), help="the repository copy to run")
    ap.add_argument("--record", help="record name (default preset_run, with --against preset_run_against)")
    ap.add_argument("--against", help="an earlier copy of the repository, run in turn with --checkout")
    ap.add_argument("--rounds", type=int, default=1, help="with --against: runs of each row in each copy")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every row (repeatable)")
    args = ap.parse_args()
    if args.against:
        return compare(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows.split(","):
            r = run_row(row, args.epochs, args.threads, os.path.abspath(args.checkout), tmp, args.set)
            rows.append(r)
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(r["share"].items(), key=lambda kv: -kv[1]))
            print(f"{row}: {r['wall_s']:.1f} s, {r['tokens_per_s']:.0f} tokens/s end to end; {shares}; "
                  f"accuracy per epoch {r['accuracy']}", flush=True)
    record = dict(checkout=os.path.abspath(args.checkout), epochs=args.epochs, threads=args.threads,
                  schedule=COMPRESSED, sets=args.set, rows=rows)
    print("record:", write_record(args.record or "preset_run", record))


def compare(args):
    """Each row in --against's copy and in --checkout's in turn, --rounds times."""
    from common import write_record
    copies = {"before": os.path.abspath(args.against), "after": os.path.abspath(args.checkout)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows.split(","):
            runs = {name: [] for name in copies}
            for _ in range(args.rounds):
                for name, path in copies.items():
                    runs[name].append(run_row(row, args.epochs, args.threads, path, tempfile.mkdtemp(dir=tmp), args.set))
            best = {name: min(r, key=lambda x: x["wall_s"]) for name, r in runs.items()}
            speedup = best["before"]["wall_s"] / best["after"]["wall_s"]
            rows.append(dict(row=row, speedup=speedup, before=best["before"], after=best["after"],
                             wall_s={name: [x["wall_s"] for x in r] for name, r in runs.items()}))
            print(f"{row}: {best['before']['wall_s']:.1f} -> {best['after']['wall_s']:.1f} s (x{speedup:.2f}); "
                  f"every wall time: {rows[-1]['wall_s']}", flush=True)
    record = dict(before=copies["before"], after=copies["after"], epochs=args.epochs, threads=args.threads,
                  rounds=args.rounds, schedule=COMPRESSED, sets=args.set, rows=rows)
    print("record:", write_record(args.record or "preset_run_against", record))


if __name__ == "__main__":
    main()
