"""Sample efficiency of recipe changes: how many epochs, questions and tokens a finished
run took to its first validation at a target accuracy, and where it ended. It reads the
run folders (their metrics.jsonl and the config in the last checkpoint), so runs trained
side by side, on any thread count, compare: nothing here is a time.

    python benchmarks/sample_efficiency.py RUN_DIR... --base prosqa-cpu-thoughts --target 0.95 \
        --record sample_efficiency_prosqa

Per run: the config keys that differ from the base preset, the epoch, questions and
tokens at the first validation at target (None: never), the final and best accuracy,
and the accuracy of every epoch. Record: benchmarks/results/RECORD.json.
"""
from __future__ import annotations

import argparse
import json
import os

from common import run_config, write_record

from coconut.run_config import config_from_dict, load_config


def differences(cfg: dict, base: dict) -> dict:
    """The keys whose values differ from the base's, nested keys dotted; the run's own
    bookkeeping (name, save_path, threads) left out."""
    out = {}
    for key, value in cfg.items():
        if key in ("name", "save_path", "threads"):
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out.update({f"{key}.{k}": v for k, v in differences(value, base[key]).items()})
        elif base.get(key) != value:
            out[key] = value
    return out


def summarise(run_dir: str, base: dict, target: float) -> dict:
    cfg = config_from_dict(run_config(run_dir), source=run_dir).to_dict()   # data paths resolved as the base's
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if '"val_accuracy"' in line]
    reached = next((line for line in lines if line["val_accuracy"] >= target), None)
    per_epoch = (cfg.get("generate") or {}).get("n")
    return {"run": os.path.basename(os.path.normpath(run_dir)), "changes": differences(cfg, base),
            "seed": cfg["seed"], "epochs": len(lines), "finished": len(lines) == cfg["num_epochs"],
            "epoch_at_target": reached["epoch"] if reached else None,
            "questions_to_target": reached["epoch"] * per_epoch if reached and per_epoch else None,
            # None where the run's records predate the count
            "tokens_to_target": reached.get("tokens_trained") if reached else None,
            "final_accuracy": lines[-1]["val_accuracy"], "best_accuracy": max(x["val_accuracy"] for x in lines),
            "tokens": lines[-1].get("tokens_trained"), "accuracy_by_epoch": [x["val_accuracy"] for x in lines]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="run folders (checkpoint_N/ and metrics.jsonl)")
    ap.add_argument("--base", required=True, help="the preset the runs changed")
    ap.add_argument("--target", type=float, required=True)
    ap.add_argument("--record", default=None)
    args = ap.parse_args()
    base = load_config(args.base).to_dict()
    rows = [summarise(d, base, args.target) for d in args.runs]
    for r in rows:
        at = "never" if r["epoch_at_target"] is None else \
            f"epoch {r['epoch_at_target']} ({r['questions_to_target']:,} questions)"
        stopped = "" if r["finished"] else f" (stopped after epoch {r['epochs']})"
        print(f"{r['run']}{stopped}: {r['changes']}: {args.target:.0%} at {at}; final {r['final_accuracy']:.3f}, "
              f"best {r['best_accuracy']:.3f}")
    if args.record:
        print("record:", write_record(args.record, {"base": args.base, "target": args.target, "runs": rows}))


if __name__ == "__main__":
    main()
