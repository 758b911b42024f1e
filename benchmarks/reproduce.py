"""The paper's ProsQA and ProntoQA comparisons, trained from scratch on this machine.

    python benchmarks/reproduce.py run                                # every row (hours)
    python benchmarks/reproduce.py run --rows prosqa-cpu:cot
    python benchmarks/reproduce.py run --resume --rows ...            # continue stopped rows
    python benchmarks/reproduce.py run --rows prosqa-cpu-thoughts:coconut --seeds 0,1,2
    python benchmarks/reproduce.py analyse                            # k-sweeps and probes
    python benchmarks/reproduce.py report                             # table and plots
    python benchmarks/reproduce.py report --merge --record NAME       # add to a recorded table

`run` trains each row with `coconut train PRESET --set method=M ...`, `--jobs` rows at
a time with the machine's threads shared between them, into `--out` (one folder per
row, named PRESET-M, or PRESET-M-seedS for a seed other than 0). `analyse` evaluates each
finished row's final checkpoint with k = 0..6 thoughts and, for Coconut-like rows on
ProsQA, runs the latent value probe (PRESET-M[-seedS].analysis.json). `report` reads
each row's metrics.jsonl (and analysis, where there is one) and writes
benchmarks/results/reproduce.json, the table benchmarks/results/reproduce.md (copied
into docs/results.md) and the plots benchmarks/results/reproduce_*.png. A row is reported
with its final epoch's validation accuracy and mean generated tokens; the best epoch is
shown next to it; a row run with several seeds with their mean and standard deviation.
Validation is the official split, the only data anything is chosen on.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
           "prosqa-cpu-thoughts": PROSQA_METHODS, "prontoqa-cpu": PRONTOQA_METHODS}
ROWS = [f"{preset}:{m}" for preset, methods in PRESETS.items() for m in methods]
# Options a row needs beyond the preset: iCoT removes the ProsQA chain (at most 6 steps
# of 3 symbolic tokens) at about the curriculum's pace: 2 tokens per epoch, gone by
# epoch 9 of 16 (one step every 2 epochs); with the long schedule (prosqa-cpu-long and
# -fresh) 1 per epoch, the slowest whole-token pace, gone by epoch 18 of 65.
ROW_OPTIONS = {"prosqa-cpu:icot": ["method_options.tokens_removed_per_epoch=2"],
               "prosqa-cpu-long:icot": ["method_options.tokens_removed_per_epoch=1"],
               "prosqa-cpu-fresh:icot": ["method_options.tokens_removed_per_epoch=1"],
               "prosqa-cpu-thoughts:icot": ["method_options.tokens_removed_per_epoch=1"],
               # the preset's label for the next thought; these methods have no thoughts
               "prontoqa-cpu:cot": ["recipe.predict_past_eot=false"],
               "prontoqa-cpu:no_cot": ["recipe.predict_past_eot=false"]}
for _method in ("cot", "no_cot", "icot", "pause_token", "no_thought", "pause_as_thought"):
    ROW_OPTIONS.setdefault(f"prosqa-cpu-thoughts:{_method}", []).append("recipe.predict_past_eot=false")
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


def split_row(row: str) -> tuple[str, str, int]:
    """PRESET:METHOD[:seedS] -> (preset, method, seed); seed 0 when not given."""
    parts = row.split(":")
    seed = 0
    if len(parts) == 3 and re.fullmatch(r"seed\d+", parts[2]):
        seed = int(parts[2][4:])
        parts = parts[:2]
    if len(parts) != 2:
        raise ValueError(f"a row is PRESET:METHOD or PRESET:METHOD:seedS, got {row!r}")
    return parts[0], parts[1], seed


def base_row(row: str) -> str:
    preset, method, _ = split_row(row)
    return f"{preset}:{method}"


def run_name(row: str) -> str:
    """The row's folder (and log) name: PRESET-METHOD, with -seedS for a seed other than 0."""
    preset, method, seed = split_row(row)
    return f"{preset}-{method}" + (f"-seed{seed}" if seed else "")


def row_overrides(row: str) -> list[str]:
    """The `--set` values that make a preset's run this row."""
    _, method, seed = split_row(row)
    return [f"method={method}", f"name={run_name(row)}", *([f"seed={seed}"] if seed else []),
            *ROW_OPTIONS.get(base_row(row), [])]


def row_command(row: str) -> list[str]:
    """The `coconut train` arguments of a row (what docs/results.md lists)."""
    return ["coconut", "train", split_row(row)[0], *[a for o in row_overrides(row) for a in ("--set", o)]]


def with_seeds(rows: list[str], seeds: list[int]) -> list[str]:
    return [row if not s else f"{row}:seed{s}" for row in rows for s in seeds]


def runs_in(out: str, row: str) -> list[str]:
    """The runs of a row found in `out`: the row itself (seed 0) and its :seedS runs."""
    found = []
    if os.path.isdir(os.path.join(out, run_name(row))):
        found.append(row)
    pattern = re.compile(re.escape(run_name(row)) + r"-seed(\d+)$")
    seeds = sorted(int(m.group(1)) for m in map(pattern.match, os.listdir(out) if os.path.isdir(out) else [])
                   if m)
    return found + [f"{row}:seed{s}" for s in seeds]


def run_rows(rows: list[str], out: str, jobs: int, threads: int, resume: bool = False) -> None:
    """Train the rows. With resume, a row whose folder holds checkpoints continues from
    its latest one (a row stopped with Ctrl-C saved one), its log grows and its minutes
    add to those recorded before; the other rows start afresh."""
    os.makedirs(out, exist_ok=True)

    def one(row: str) -> tuple[str, int, float]:
        name = run_name(row)
        cmd = row_command(row) + ["--set", f"save_path={out}", "--set", f"threads={threads}"]
        cmd[0:1] = [sys.executable, "-m", "coconut"]
        info_path = os.path.join(out, f"{name}.run.json")
        continues = resume and bool(list_checkpoints(os.path.join(out, name)))
        earlier = 0.0
        if continues:
            cmd.append("--resume")
            if os.path.exists(info_path):
                with open(info_path) as f:
                    earlier = json.load(f)["wall_minutes"]
        start = time.time()
        with open(os.path.join(out, f"{name}.log"), "a" if continues else "w") as log:
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
    preset, method, seed = split_row(row)
    name = run_name(row)
    path = os.path.join(out, name, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    epochs = [x for x in lines if "val_accuracy" in x and "step" not in x]
    steps = [x for x in lines if "step" in x and "loss" in x]
    if not epochs:
        return None
    run_info = {}
    info_path = os.path.join(out, f"{name}.run.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            run_info = json.load(f)
    final = epochs[-1]
    best = max(epochs, key=lambda x: x["val_accuracy"])
    checkpoint = os.path.join(out, name, f"checkpoint_{final['epoch']}")
    paper_acc, paper_tokens = PAPER[task(preset)].get(method, (None, None))
    state_path = os.path.join(checkpoint, "trainer_state.json")
    state = None
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    planned = state["config"]["num_epochs"] if state else None   # a row stopped early says so
    analysis = {}
    analysis_path = os.path.join(out, f"{name}.analysis.json")
    if os.path.exists(analysis_path):
        with open(analysis_path) as f:
            analysis = json.load(f)
    return {"row": base_row(row), "run": row, "seed": seed, "preset": preset, "method": method,
            "command": " ".join(row_command(row)),
            "epochs": epochs, "steps": steps, "accuracy": final["val_accuracy"],
            "mean_new_tokens": final["mean_new_tokens"],
            "mean_thoughts": final["mean_thoughts"] if "mean_thoughts" in final
            else mean_thoughts(row, state, final["epoch"]),
            "best_accuracy": best["val_accuracy"],
            "best_epoch": best["epoch"], "final_epoch": final["epoch"], "planned_epochs": planned,
            "wall_minutes": run_info.get("wall_minutes"),
            "threads": run_info.get("threads"), "paper_accuracy": paper_acc, "paper_tokens": paper_tokens,
            "k_sweep": analysis.get("k_sweep"), "probe": analysis.get("probe")}


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
        cfg = load_config(split_row(row)[0], row_overrides(row))
    except ConfigError:
        return None
    method = build_method(cfg)
    _, val, _ = load_data(cfg, with_train=False)
    tok = build_tokenization(cfg, method, val, state["tokenization"])
    prompts = [method.prompt_ids(tok, ex, epoch - 1) for ex in val]
    return sum(p.count(tok.latent_id) for p in prompts) / len(prompts)


def analyse(out: str, run: str, ks=range(7)) -> str | None:
    """The final checkpoint's accuracy with k = 0..6 thoughts (continuous thoughts, or
    pause tokens for a pause method; a method without thoughts gets its own prompt as
    k = 0), and for a Coconut-like row on ProsQA the latent value
    probe (coconut.analysis.latent_probe: for thought t the layer reached, distance t - 1,
    and the next one, distance t, on and off a shortest path against the rest, and the
    mean value of every layer). Written to NAME.analysis.json beside the run's folder;
    returns that path, or None for a run that has not finished its epochs."""
    from coconut.analysis.latent_probe import depth_dataset, probe_dataset
    from coconut.assembly import assemble
    from coconut.checkpoints import read_state
    from coconut.evaluate import evaluate, k_sweep
    from coconut.run_config import load_config
    name = run_name(run)
    finished = [c for c in list_checkpoints(os.path.join(out, name)) if c[1] == 0]
    if not finished:
        raise SystemExit(f"{name}: no checkpoint at the end of an epoch in {out}")
    epoch, _, checkpoint = finished[-1]
    state = read_state(checkpoint)
    if epoch < state["config"]["num_epochs"]:
        return None
    built = assemble(load_config(split_row(run)[0], row_overrides(run)), "eval", checkpoint=checkpoint)
    cfg, method, tok, model, val = built.cfg, built.method, built.tok, built.model, built.val_set
    if method.thought_mode == "none":   # nothing to sweep: the method's own prompt, k = 0
        sweep = {0: evaluate(model, tok, method, val, cfg.max_new_tokens, cfg.eval_batch_size)}
    else:
        sweep = k_sweep(model, tok, val, ks=ks, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size,
                        thoughts=method.thought_mode)
    result = {"checkpoint": checkpoint, "epoch": epoch, "k_sweep": {k: r.accuracy for k, r in sweep.items()}}
    if method.thought_mode == "continuous" and task(split_row(run)[0]) == "prosqa":
        k_max = max(ks)
        result["probe"] = {kind: probe_dataset(model, tok, val, k_max, depth_offset=offset)
                           for kind, offset in (("reached", 0), ("next", 1))}
        result["probe"]["by_depth"] = depth_dataset(model, tok, val, k_max, max_depth=k_max)["by_depth"].tolist()
    path = os.path.join(out, f"{name}.analysis.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


def group_runs(results: list[dict], preset: str) -> list[list[dict]]:
    """The runs of a preset's rows, one list per row (its seeds), in the rows' order."""
    rows = [r for r in ROWS if r.startswith(preset + ":")]
    return [g for g in ([x for x in results if x["row"] == row] for row in rows) if g]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _sd(xs: list[float]) -> float:
    m = _mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0


def mean_k_sweep(runs: list[dict]) -> dict[int, float] | None:
    """Accuracy % per k, the mean over the runs that have a k-sweep."""
    sweeps = [r["k_sweep"] for r in runs if r.get("k_sweep")]
    if not sweeps:
        return None
    ks = sorted({int(k) for s in sweeps for k in s}, key=int)
    return {k: 100 * _mean([s[str(k)] for s in sweeps if str(k) in s]) for k in ks}


def table(results: list[dict]) -> str:
    lines = []
    for preset in PRESETS:
        groups = group_runs(results, preset)
        if not groups:
            continue
        sweeps = any(r.get("k_sweep") for g in groups for r in g)
        lines += [f"**{preset}** (validation: the official {VALIDATION[task(preset)]})",
                  "", "| method | accuracy % | new tokens + thoughts | best epoch (acc. %) | paper GPT-2 % (tokens) "
                  "| minutes |" + (" k = 0..6 thoughts % |" if sweeps else "") + " command |",
                  "|---|---|---|---|---|---|" + ("---|" if sweeps else "") + "---|"]
        for runs in groups:
            r = runs[0]
            paper = f"{r['paper_accuracy']} ({r['paper_tokens']})" if r["paper_accuracy"] is not None else "-"
            walls = [x["wall_minutes"] for x in runs if x["wall_minutes"]]
            minutes = f"{_mean(walls):.0f}" if walls else "-"
            thoughts = "-" if r["mean_thoughts"] is None else f"{r['mean_thoughts']:.1f}"
            accs = [100 * x["accuracy"] for x in runs]
            if len(runs) == 1:
                stopped = (f" (stopped after epoch {r['final_epoch']} of {r['planned_epochs']})"
                           if r["planned_epochs"] and r["final_epoch"] < r["planned_epochs"] else "")
                accuracy, best = f"{accs[0]:.1f}{stopped}", f"{r['best_epoch']} ({100 * r['best_accuracy']:.1f})"
            else:
                seeds = ", ".join(f"{a:.1f}" for a in accs)
                accuracy = f"{_mean(accs):.1f} ± {_sd(accs):.1f} (seeds {', '.join(str(x['seed']) for x in runs)}: " \
                           f"{seeds})"
                best = "; ".join(f"{x['best_epoch']} ({100 * x['best_accuracy']:.1f})" for x in runs)
            sweep = mean_k_sweep(runs)
            sweep_cell = (" " + " ".join(f"{v:.1f}" for v in sweep.values()) + " |" if sweep else " - |") \
                if sweeps else ""
            tokens = _mean([x["mean_new_tokens"] for x in runs])
            seed_note = f" (seed S: `--set seed=S --set name={preset}-{r['method']}-seedS`)" if len(runs) > 1 else ""
            lines.append(f"| {LABELS[r['method']]} | {accuracy} | {tokens:.1f} + {thoughts} | {best} | {paper} | "
                         f"{minutes} |{sweep_cell} `{r['command']}`{seed_note} |")
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
            label = LABELS[r["method"]] + (f" (seed {r['seed']})" if r["seed"] else "")
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
                ax.plot(sorted(last), [last[s] for s in sorted(last)], marker="o",
                        label=LABELS[r["method"]] + (f" (seed {r['seed']})" if r["seed"] else ""))
            ax.set(xlabel="stage (steps replaced)", ylabel="validation accuracy % at the stage's last epoch",
                   title=f"{preset}: accuracy per stage", ylim=(0, 100))
            written.append(_save(plt, fig, (ax,), f"{prefix}_{preset}_stages.png"))

        # accuracy with k thoughts at inference, the mean over each row's seeds
        swept = [(runs, mean_k_sweep(runs)) for runs in group_runs(results, preset)]
        swept = [(runs, sweep) for runs, sweep in swept if sweep]
        if swept:
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for runs, sweep in swept:
                n = sum(1 for r in runs if r.get("k_sweep"))
                ax.plot(list(sweep), list(sweep.values()), marker="o",
                        label=LABELS[runs[0]["method"]] + (f" (mean of {n} seeds)" if n > 1 else ""))
            ax.set(xlabel="k thoughts at inference", ylabel="validation accuracy %",
                   title=f"{preset}: the k-sweep of the final models", ylim=(0, 100))
            written.append(_save(plt, fig, (ax,), f"{prefix}_{preset}_k_sweep.png"))

        # the latent value probe of the Coconut rows, the mean over their seeds
        for method in dict.fromkeys(r["method"] for r in rows if r.get("probe")):
            probed = [r["probe"] for r in rows if r["method"] == method and r.get("probe")]
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
            kinds = (("reached", "thought t against the layer at distance t - 1"),
                     ("next", "thought t against the layer at distance t"))
            for ax, (kind, title) in zip(axes, kinds):
                ts = sorted(probed[0][kind], key=int)
                for key, name in (("optimal_mean", "on a shortest path"), ("off_path_mean", "off the paths"),
                                  ("rest_mean", "the other nodes")):
                    ax.plot([int(t) + 1 for t in ts], [_mean([p[kind][t][key] for p in probed]) for t in ts],
                            marker="o", label=f"{name} ({LABELS[method]}, {len(probed)} run(s))")
                ax.set(xlabel="thought t", yscale="log",
                       ylabel="mean value (probability of the node's token)", title=f"{preset}: {title}")
            written.append(_save(plt, fig, axes, f"{prefix}_{preset}_{method}_probe.png"))
    return written


def _save(plt, fig, axes, path: str) -> str:
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(out: str, results_dir: str = RESULTS, name: str = "reproduce", merge: bool = False) -> list[dict]:
    """The table (NAME.md), the rows (NAME.json) and the plots (NAME_*.png) of the runs
    in `out`, written to `results_dir`. With merge, the runs already recorded in NAME.json
    that `out` does not hold stay in the record (a run in `out` replaces its recorded
    self), so rows trained in different places or sessions make one table."""
    results = [r for r in (read_row(out, run) for row in ROWS for run in runs_in(out, row)) if r is not None]
    record = os.path.join(results_dir, f"{name}.json")
    if merge and os.path.exists(record):
        with open(record) as f:
            recorded = json.load(f)["rows"]
        fresh = {r["run"] for r in results}
        results += [r for r in recorded if r["run"] not in fresh]
        order = {row: i for i, row in enumerate(ROWS)}
        results.sort(key=lambda r: (order[r["row"]], r["seed"]))
    if not results:
        sys.exit(f"no finished rows in {out}")
    os.makedirs(results_dir, exist_ok=True)
    with open(record, "w") as f:
        json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": results}, f, indent=1)
    text = table(results)
    with open(os.path.join(results_dir, f"{name}.md"), "w") as f:
        f.write(text)
    print(text)
    for path in plot(results, os.path.join(results_dir, name)):
        print("wrote", path)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "analyse", "report"])
    p.add_argument("--rows", default=",".join(ROWS),
                   help="comma-separated PRESET:METHOD rows, or PRESET:METHOD:seedS runs (default: all rows)")
    p.add_argument("--seeds", default=None,
                   help="comma-separated seeds each row of --rows runs with (default: 0; for analyse, every seed "
                        "found in --out)")
    p.add_argument("--out", default="runs/reproduce", help="where the runs' checkpoints and logs go")
    p.add_argument("--jobs", type=int, default=2, help="rows trained at the same time")
    p.add_argument("--record", default="reproduce",
                   help="report: the name of its files in benchmarks/results (default: reproduce)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per row (default: cores / jobs; analyse: all cores)")
    p.add_argument("--merge", action="store_true",
                   help="report: keep the runs already recorded under --record that --out does not hold")
    p.add_argument("--resume", action="store_true",
                   help="rows with checkpoints in --out continue from their latest one; the others start afresh")
    args = p.parse_args()
    if args.what == "report":
        report(args.out, name=args.record, merge=args.merge)
        return
    try:
        runs = with_seeds([r for r in args.rows.split(",") if r], [int(x) for x in (args.seeds or "0").split(",")])
        unknown = [r for r in runs if base_row(r) not in ROWS]
    except ValueError as e:
        sys.exit(str(e))
    if unknown:
        sys.exit(f"unknown rows {unknown}; known: {ROWS}")
    if args.what == "analyse":
        import coconut
        coconut.set_num_threads(args.threads or os.cpu_count() or 1)
        # the runs asked for; a row named without a seed (and no --seeds): each of its runs in --out
        found = [r for run in runs for r in ([run] if args.seeds or split_row(run)[2] else runs_in(args.out, run))]
        for run in dict.fromkeys(found):
            if os.path.isdir(os.path.join(args.out, run_name(run))):
                print(analyse(args.out, run) or f"{run_name(run)}: not finished, left out", flush=True)
        return
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    run_rows(runs, args.out, args.jobs, threads, args.resume)


if __name__ == "__main__":
    main()
