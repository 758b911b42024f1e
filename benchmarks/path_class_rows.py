"""The reasoning-path classes of finished ProsQA run folders trained outside one sweep
(lone runs, rows of several sweeps): each folder's final checkpoint analysed as a sweep
analyses its rows (k_sweep, path_classes: the classes of the final model's answers and
after each k), written as results lines, so that `coconut report FILE --plots DIR`
draws the paper's Figure 5 for them. `--analyses k_sweep` makes the lines of any task's
runs (ProntoQA's) for `coconut report`'s tables.

    python benchmarks/path_class_rows.py RUN_DIR... --base prosqa-cpu-thoughts \
        --out benchmarks/results/path_classes_prosqa-cpu-thoughts.jsonl

Each run is rebuilt from the config its last checkpoint saved. A run named
BASE-METHOD[-VARIANT][-seedS] gets VARIANT in the `variant` column (PCCoT's own
training: codi-iterations3), so the report keeps it apart from the method's plain rows.
"""
from __future__ import annotations

import argparse
import os
import re

from common import run_config

import coconut
from coconut.run_config import config_from_dict
from coconut.sweep.results import update_line
from coconut.sweep.runner import analysed_line, final_checkpoint
from coconut.sweep.spec import Row

ANALYSES = "k_sweep,path_classes"


def row_of(run_dir: str, base: str) -> Row:
    cfg = config_from_dict(run_config(run_dir), source=run_dir)
    prefix = f"{base}-{cfg.method}"
    rest = re.sub(r"-seed\d+", "", cfg.name[len(prefix):]).strip("-") if cfg.name.startswith(prefix) else ""
    values = {"method": cfg.method, **({"variant": rest} if rest else {}), "seed": cfg.seed}
    # the folder may have moved since: the results name the one read here
    cfg.save_path, cfg.name = os.path.dirname(os.path.abspath(run_dir)), os.path.basename(os.path.normpath(run_dir))
    return Row(name=cfg.name, values=values, cfg=cfg, base_name=base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="finished run folders (checkpoint_N/, metrics.jsonl)")
    ap.add_argument("--base", required=True, help="the preset the runs trained on (the report's table)")
    ap.add_argument("--out", required=True, help="the results file the lines go to (a line per run, replaced)")
    ap.add_argument("--analyses", default=ANALYSES, help=f"comma-separated sweep analyses (default: {ANALYSES})")
    args = ap.parse_args()
    analyses = args.analyses.split(",")
    for run_dir in args.runs:
        row = row_of(run_dir, args.base)
        line = analysed_line(row, final_checkpoint(row), analyses, {}, coconut.get_num_threads())
        update_line(args.out, line)
        print(f"{row.name} (epoch {line['final_epoch']}): final {line['final_accuracy']:.3f}", flush=True)


if __name__ == "__main__":
    main()
