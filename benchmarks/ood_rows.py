"""Out-of-distribution rows: finished ProsQA run folders scored at their best checkpoint
(best.json: the best validation accuracy) on the validation split and every
out-of-distribution split (coconut/data/ood/), with the method's own prompt and, for a
method with thoughts, two thoughts more than it trained with (`Run.ood`).

    python benchmarks/ood_rows.py RUN_DIR... --record ood_prosqa-cpu-thoughts

Each run is rebuilt from the config its last checkpoint saved, so a folder that moved
still scores. Record: benchmarks/results/RECORD.json, every run's row.
"""
from __future__ import annotations

import argparse
import json
import os

from common import run_config, write_record

from coconut.assembly import assemble
from coconut.run_config import config_from_dict


def score(run_dir: str) -> dict:
    cfg = config_from_dict(run_config(run_dir), source=run_dir)
    with open(os.path.join(run_dir, "best.json"), encoding="utf-8") as f:
        best = json.load(f)
    run = assemble(cfg, "eval", checkpoint=os.path.join(run_dir, best["checkpoint"]))
    table = run.ood()
    more = run.more_thoughts
    return {"run": os.path.basename(os.path.normpath(run_dir)), "method": cfg.method, "seed": cfg.seed,
            "best_epoch": best["epoch"], "trained_thoughts": run.method.max_thoughts, "more_thoughts": more,
            "own": {name: own.accuracy for name, (own, _) in table.items()},
            "more": None if more is None else {name: extra.accuracy for name, (_, extra) in table.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="finished ProsQA run folders (best.json, checkpoint_N/)")
    ap.add_argument("--record", default=None)
    args = ap.parse_args()
    rows = []
    for run_dir in args.runs:
        row = score(run_dir)
        splits = " ".join(f"{k} {v:.3f}" for k, v in row["own"].items())
        more = "" if row["more"] is None else \
            f"; k = {row['more_thoughts']}: " + " ".join(f"{k} {v:.3f}" for k, v in row["more"].items())
        print(f"{row['run']} (epoch {row['best_epoch']}): {splits}{more}", flush=True)
        rows.append(row)
    if args.record:
        print("record:", write_record(args.record, {"runs": rows}))


if __name__ == "__main__":
    main()
