"""The paper's ProsQA and ProntoQA comparisons, trained from scratch on this machine.

    python benchmarks/reproduce.py run                                # every row (hours)
    python benchmarks/reproduce.py run --rows prosqa-cpu:cot
    python benchmarks/reproduce.py run --resume --rows ...            # continue stopped rows
    python benchmarks/reproduce.py report                             # table and plots

`run` trains each row with `coconut train PRESET --set method=M ...`, `--jobs` rows at
a time with the machine's threads shared between them, into `--out` (one folder per
row, named PRESET-M). `report` reads each row's metrics.jsonl and writes
benchmarks/results/reproduce.json, the table benchmarks/results/reproduce.md (copied
into docs/reproduction.md) and the plots benchmarks/results/reproduce_*.png. A row is reported
with its final epoch's validation accuracy and mean generated tokens; the best epoch is
shown next to it. Validation is the official split, the only data anything is chosen on.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from coconut.checkpoints import list_checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

PROSQA_METHODS = ("coconut", "cot", "no_cot", "icot", "pause_token", "no_curriculum", "no_thought", "pause_as_thought")
PRONTOQA_METHODS = ("coconut", "cot", "no_cot")
PRESETS = {"prosqa-cpu": PROSQA_METHODS, "prosqa-cpu-long": PROSQA_METHODS, "prosqa-cpu-fresh": PROSQA_METHODS,
           "prontoqa-cpu": PRONTOQA_METHODS}
ROWS = [f"{preset}:{m}" for preset, methods in PRESETS.items() for m in methods]
# Options a row needs beyond the preset: iCoT removes the ProsQA chain (at most 6 steps
# of 3 symbolic tokens) at about the curriculum's pace: 2 tokens per epoch, gone by
# epoch 9 of 16 (one step every 2 epochs); with the long schedule (prosqa-cpu-long and
# -fresh) 1 per epoch, the slowest whole-token pace, gone by epoch 18 of 65.
ROW_OPTIONS = {"prosqa-cpu:icot": ["method_options.tokens_removed_per_epoch=2"],
               "prosqa-cpu-long:icot": ["method_options.tokens_removed_per_epoch=1"],
               "prosqa-cpu-fresh:icot": ["method_options.tokens_removed_per_epoch=1"],
               # the preset's label for the next thought; these methods have no thoughts
               "prontoqa-cpu:cot": ["recipe.predict_past_eot=false"],
               "prontoqa-cpu:no_cot": ["recipe.predict_past_eot=false"]}
STAGE_CURRICULUM = ("coconut", "no_thought", "pause_as_thought")

# Hao et al. 2024, table 1: GPT-2 accuracy % (mean generated tokens), by task
PAPER = {
    "prosqa": {"cot": (77.5, 49.4), "no_cot": (76.7, 8.2), "icot": (98.2, 8.2), "pause_token": (75.9, 8.2),
               "coconut": (97.0, 14.2), "no_curriculum": (76.1, 14.2), "no_thought": (95.5, 8.2),
               "pause_as_thought": (96.6, 8.2)},
    "prontoqa": {"cot": (98.8, 92.5), "no_cot": (93.8, 3.0), "coconut": (99.8, 9.0)},
}
VALIDATION = {"prosqa": "ProsQA 300", "prontoqa": "ProntoQA 200"}

LABELS = {"coconut": "Coconut", "cot": "CoT", "no_cot": "No-CoT", "icot": "iCoT", "pause_token": "Pause token",
          "no_curriculum": "w/o curriculum", "no_thought": "w/o thought", "pause_as_thought": "pause as thought"}


def task(preset: str) -> str:
    """"prosqa" or "prontoqa": the paper's figures a preset's rows compare with."""
    return preset.split("-")[0]


def row_overrides(row: str) -> list[str]:
    """The `--set` values that make a preset's run this row."""
    preset, method = row.split(":")
    return [f"method={method}", f"name={preset}-{method}", *ROW_OPTIONS.get(row, [])]


def row_command(row: str) -> list[str]:
    """The `coconut train` arguments of a row (what docs/reproduction.md lists)."""
    return ["coconut", "train", row.split(":")[0], *[a for o in row_overrides(row) for a in ("--set", o)]]


def run_rows(rows: list[str], out: str, jobs: int, threads: int, resume: bool = False) -> None:
    """Train the rows. With resume, a row whose folder holds checkpoints continues from
    its latest one (a row stopped with Ctrl-C saved one), its log grows and its minutes
    add to those recorded before; the other rows start afresh."""
    os.makedirs(out, exist_ok=True)

    def one(row: str) -> tuple[str, int, float]:
        preset, method = row.split(":")
        cmd = row_command(row) + ["--set", f"save_path={out}", "--set", f"threads={threads}"]
        cmd[0:1] = [sys.executable, "-m", "coconut"]
        info_path = os.path.join(out, f"{preset}-{method}.run.json")
        continues = resume and bool(list_checkpoints(os.path.join(out, f"{preset}-{method}")))
        earlier = 0.0
        if continues:
            cmd.append("--resume")
            if os.path.exists(info_path):
                with open(info_path) as f:
                    earlier = json.load(f)["wall_minutes"]
        start = time.time()
        with open(os.path.join(out, f"{preset}-{method}.log"), "a" if continues else "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        minutes = earlier + (time.time() - start) / 60
        with open(info_path, "w") as f:
            json.dump({"row": row, "command": cmd, "returncode": rc, "wall_minutes": minutes,
                       "threads": threads, "parallel_jobs": jobs}, f)
        print(f"{row}: exit {rc} after {minutes:.1f} min", flush=True)
        return row, rc, minutes

    with ThreadPoolExecutor(jobs) as pool:
        failed = [row for row, rc, _ in pool.map(one, rows) if rc != 0]
    if failed:
        sys.exit(f"failed rows: {', '.join(failed)} (see their .log files in {out})")


def read_row(out: str, row: str) -> dict | None:
    preset, method = row.split(":")
    path = os.path.join(out, f"{preset}-{method}", "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    epochs = [x for x in lines if "val_accuracy" in x and "step" not in x]
    steps = [x for x in lines if "step" in x and "loss" in x]
    if not epochs:
        return None
    run_info = {}
    info_path = os.path.join(out, f"{preset}-{method}.run.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            run_info = json.load(f)
    final = epochs[-1]
    best = max(epochs, key=lambda x: x["val_accuracy"])
    checkpoint = os.path.join(out, f"{preset}-{method}", f"checkpoint_{final['epoch']}")
    paper_acc, paper_tokens = PAPER[task(preset)].get(method, (None, None))
    state_path = os.path.join(checkpoint, "trainer_state.json")
    state = None
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    planned = state["config"]["num_epochs"] if state else None   # a row stopped early says so
    return {"row": row, "preset": preset, "method": method, "command": " ".join(row_command(row)),
            "epochs": epochs, "steps": steps, "accuracy": final["val_accuracy"],
            "mean_new_tokens": final["mean_new_tokens"],
            "mean_thoughts": final["mean_thoughts"] if "mean_thoughts" in final
            else mean_thoughts(row, state, final["epoch"]),
            "best_accuracy": best["val_accuracy"],
            "best_epoch": best["epoch"], "final_epoch": final["epoch"], "planned_epochs": planned,
            "wall_minutes": run_info.get("wall_minutes"),
            "threads": run_info.get("threads"), "paper_accuracy": paper_acc, "paper_tokens": paper_tokens}


def mean_thoughts(row: str, state: dict | None, epoch: int) -> float | None:
    """Thought slots per validation prompt after `epoch` (1-based) epochs, for runs whose
    metrics predate the trainer's own `mean_thoughts`: the paper's token counts include
    Coconut's continuous thoughts. `state`: the final checkpoint's trainer state (its
    tokenization). None without the state or its tokenization."""
    from coconut.run_config import ConfigError, load_config
    from coconut.build import build_method, build_tokenization, load_data
    if state is None or "tokenization" not in state:
        return None
    try:
        cfg = load_config(row.split(":")[0], row_overrides(row))
    except ConfigError:
        return None
    if cfg.generate is not None:
        cfg.generate.n = 1   # only the validation examples are needed
    cfg.only_eval = True
    method = build_method(cfg)
    _, val, _ = load_data(cfg)
    tok = build_tokenization(cfg, method, val, state["tokenization"])
    prompts = [method.prompt_ids(tok, ex, epoch - 1) for ex in val]
    return sum(p.count(tok.latent_id) for p in prompts) / len(prompts)


def table(results: list[dict]) -> str:
    lines = []
    for preset in PRESETS:
        rows = [r for r in results if r["preset"] == preset]
        if not rows:
            continue
        lines += [f"**{preset}** (validation: the official {VALIDATION[task(preset)]})",
                  "", "| method | accuracy % | new tokens + thoughts | best epoch (acc. %) | paper GPT-2 % (tokens) "
                  "| minutes | command |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            paper = f"{r['paper_accuracy']} ({r['paper_tokens']})" if r["paper_accuracy"] is not None else "-"
            minutes = f"{r['wall_minutes']:.0f}" if r["wall_minutes"] else "-"
            thoughts = "-" if r["mean_thoughts"] is None else f"{r['mean_thoughts']:.1f}"
            stopped = (f" (stopped after epoch {r['final_epoch']} of {r['planned_epochs']})"
                       if r["planned_epochs"] and r["final_epoch"] < r["planned_epochs"] else "")
            lines.append(f"| {LABELS[r['method']]} | {100 * r['accuracy']:.1f}{stopped} | "
                         f"{r['mean_new_tokens']:.1f} + {thoughts} | "
                         f"{r['best_epoch']} ({100 * r['best_accuracy']:.1f}) | {paper} | {minutes} | "
                         f"`{r['command']}` |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], prefix: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    for preset in PRESETS:
        rows = [r for r in results if r["preset"] == preset]
        if not rows:
            continue
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
        for r in rows:
            label = LABELS[r["method"]]
            if r["steps"]:
                ax_loss.plot([s["step"] for s in r["steps"]], [s["loss"] for s in r["steps"]], label=label, lw=0.8)
            else:
                ax_loss.plot([e["global_step"] for e in r["epochs"]], [e["train_loss"] for e in r["epochs"]],
                             marker="o", label=label)
            ax_acc.plot([e["epoch"] for e in r["epochs"]], [100 * e["val_accuracy"] for e in r["epochs"]],
                        marker="o", label=label)
        ax_loss.set(xlabel="optimizer step", ylabel="training loss (per supervised token)", yscale="log",
                    title=f"{preset}: training curves")
        ax_acc.axhline(50, color="gray", ls="--", lw=1, label="chance: both tasks answer one of two")
        ax_acc.set(xlabel="epoch", ylabel="validation accuracy %", title=f"{preset}: accuracy after each epoch",
                   ylim=(0, 100))
        written.append(_save(plt, fig, (ax_loss, ax_acc), f"{prefix}_{preset}_curves.png"))

        # accuracy at the end of each stage, for the methods that walk the stage curriculum
        # (iCoT's "stage" counts tokens removed; w/o curriculum has one stage)
        staged = [r for r in rows if r["method"] in STAGE_CURRICULUM]
        if staged:
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for r in staged:
                last = {}
                for e in r["epochs"]:
                    last[e["stage"]] = 100 * e["val_accuracy"]
                ax.plot(sorted(last), [last[s] for s in sorted(last)], marker="o", label=LABELS[r["method"]])
            ax.set(xlabel="stage (steps replaced)", ylabel="validation accuracy % at the stage's last epoch",
                   title=f"{preset}: accuracy per stage", ylim=(0, 100))
            written.append(_save(plt, fig, (ax,), f"{prefix}_{preset}_stages.png"))
    return written


def _save(plt, fig, axes, path: str) -> str:
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(out: str, results_dir: str = RESULTS) -> list[dict]:
    results = [r for r in (read_row(out, row) for row in ROWS) if r is not None]
    if not results:
        sys.exit(f"no finished rows in {out}")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "reproduce.json"), "w") as f:
        json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": results}, f, indent=1)
    text = table(results)
    with open(os.path.join(results_dir, "reproduce.md"), "w") as f:
        f.write(text)
    print(text)
    for path in plot(results, os.path.join(results_dir, "reproduce")):
        print("wrote", path)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "report"])
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated PRESET:METHOD rows (default: all)")
    p.add_argument("--out", default="runs/reproduce", help="where the runs' checkpoints and logs go")
    p.add_argument("--jobs", type=int, default=2, help="rows trained at the same time")
    p.add_argument("--threads", type=int, default=None, help="threads per row (default: cores / jobs)")
    p.add_argument("--resume", action="store_true",
                   help="rows with checkpoints in --out continue from their latest one; the others start afresh")
    args = p.parse_args()
    if args.what == "report":
        report(args.out)
        return
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"unknown rows {unknown}; known: {ROWS}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    run_rows(rows, args.out, args.jobs, threads, args.resume)


if __name__ == "__main__":
    main()
