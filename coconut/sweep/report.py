"""The report of results files (coconut.sweep.results): a Markdown table per base config,
one line per group of runs (`by`: the spec's axes but the seed) with the mean ± sd over
the group's seeds, the reasoning-path classes where the rows have them, and the plots:
training curves, accuracy per stage, the k-sweep, the latent probe and the path classes
(matplotlib, needed only for the plots).

    coconut report runs/prosqa-cpu-thoughts/results.jsonl --by method --plots plots/
"""
from __future__ import annotations

import os

from coconut.analysis.path_classes import PATH_CLASSES
from coconut.sweep.results import k_columns

# Hao et al. 2024, table 1: GPT-2 accuracy % (mean generated tokens), by task
PAPER = {
    "prosqa": {"cot": (77.5, 49.4), "no_cot": (76.7, 8.2), "icot": (98.2, 8.2), "pause_token": (75.9, 8.2),
               "coconut": (97.0, 14.2), "no_curriculum": (76.1, 14.2), "no_thought": (95.5, 8.2),
               "pause_as_thought": (96.6, 8.2)},
    "prontoqa": {"cot": (98.8, 92.5), "no_cot": (93.8, 3.0), "coconut": (99.8, 9.0)},
}
VALIDATION = {"prosqa": "ProsQA 300", "prontoqa": "ProntoQA 200"}
LABELS = {"coconut": "Coconut", "cot": "CoT", "no_cot": "No-CoT", "icot": "iCoT", "pause_token": "Pause token",
          "no_curriculum": "w/o curriculum", "no_thought": "w/o thought", "pause_as_thought": "pause as thought",
          "coconut_frontier": "Coconut, frontier labels", "soft_thoughts": "soft thoughts", "pccot": "PCCoT",
          "codi": "CODI"}
# the methods that walk the stage curriculum (iCoT's "stage" counts tokens removed;
# w/o curriculum has one stage): the stages plot draws them
STAGE_CURRICULUM = ("coconut", "no_thought", "pause_as_thought")


def task(base: str) -> str:
    """"prosqa", "prontoqa", ...: the paper's figures a base config's rows compare with."""
    return str(base).split("-")[0].split("_")[0]


def group_by(lines: list[dict], by: list[str] | None = None) -> dict[str, tuple[list[str], dict[tuple, list[dict]]]]:
    """base -> (the columns it groups by, (their values) -> its runs), in the order the
    runs come (by method: the methods in LABELS' order). by: default each base's axes but
    the seed (the name, where its runs have no other axis)."""
    bases: dict = {}
    for line in lines:
        bases.setdefault(line.get("base"), []).append(line)
    out = {}
    for base, runs in bases.items():
        keys = by or default_by(runs)
        groups: dict = {}
        for line in sorted(runs, key=lambda r: (r.get("seed") is None, r.get("seed") or 0)):   # seeds in order
            groups.setdefault(tuple(line.get(k) for k in keys), []).append(line)
        if "method" in keys:   # the methods in the tables' order, whatever order the rows finished in
            at, order = keys.index("method"), list(LABELS)
            groups = dict(sorted(groups.items(), key=lambda item: order.index(item[0][at])
                                 if item[0][at] in order else len(order)))
        out[base] = (keys, groups)
    return out


def default_by(lines: list[dict]) -> list[str]:
    axes = [a for line in lines for a in line.get("axes", []) if a != "seed"]
    return list(dict.fromkeys(axes)) or ["name"]


def label(key: str, value) -> str:
    if value is None:   # a column some of the runs lack
        return "-"
    return LABELS.get(value, str(value)) if key == "method" else str(value)


def table(lines: list[dict], by: list[str] | None = None) -> str:
    """A Markdown table per base config: final accuracy (mean ± sd over seeds), best,
    the k-sweep's mean, new tokens, minutes and, for a method the paper ran, its figure."""
    out = []
    for base, (by, groups) in group_by(lines, by).items():
        t = task(base)
        ks = sorted({k for runs in groups.values() for r in runs for k in k_columns(r)})
        paper = "method" in by and t in PAPER
        title = f"**{base}**" + (f" (validation: the official {VALIDATION[t]})" if t in VALIDATION else "")
        head = [*by, "seeds", "final accuracy %", "best accuracy % (epoch)"]
        head += [f"k = {ks[0]}..{ks[-1]} thoughts %"] if ks else []
        head += ["new tokens", "minutes"] + (["paper GPT-2 %"] if paper else [])
        out += [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for values, runs in groups.items():
            cells = [label(k, v) for k, v in zip(by, values)]
            cells.append(", ".join(str(r.get("seed", "-")) for r in runs))
            cells.append(_accuracy(runs))
            bests = [100 * r["best_accuracy"] for r in runs]
            cells.append(f"{bests[0]:.1f} ({runs[0]['best_epoch']})" if len(runs) == 1 else _mean_sd(bests))
            if ks:
                sweeps = [k_columns(r) for r in runs if k_columns(r)]
                cells.append(" ".join(f"{100 * mean([s[k] for s in sweeps if k in s]):.1f}"
                                      for k in ks if any(k in s for s in sweeps)) if sweeps else "-")
            cells.append(f"{mean([r['mean_new_tokens'] for r in runs]):.1f}")
            minutes = [r["minutes"] for r in runs if r.get("minutes")]
            cells.append(f"{mean(minutes):.0f}" if minutes else "-")
            if paper:
                method = dict(zip(by, values))["method"]
                cells.append(f"{PAPER[t][method][0]}" if method in PAPER[t] else "-")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def path_table(lines: list[dict], by: list[str] | None = None) -> str:
    """A Markdown table per base config of the paper's reasoning-path classes (its Figure
    5), % of the validation questions, the mean over each group's seeds: a line for the
    final model's own answers and, for a method with thoughts, one for each k of the
    k-sweep. Empty when no row has them."""
    out = []
    for base, (by, groups) in group_by(lines, by).items():
        bars = path_bars(groups, by)
        if not bars:
            continue
        head = ["run", "seeds", *(c.replace("_", " ") for c in PATH_CLASSES)]
        out += [f"**{base}**: reasoning-path classes %", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join([name, str(n)] + [f"{100 * f[c]:.1f}" for c in PATH_CLASSES]) + " |"
                for name, n, f in bars]
        out.append("")
    return "\n".join(out)


def path_bars(groups: dict, by: list[str], sweep_alone: bool = False) -> list[tuple[str, int, dict]]:
    """(name, runs, {class: mean fraction}) per group: its final model's answers (left
    out with `sweep_alone` where the group was swept), then after k thoughts for each k
    the group's rows swept (`path_k`)."""
    bars = []
    for values, runs in groups.items():
        runs = [r for r in runs if r.get("path_correct_path") is not None]
        if not runs:
            continue
        # a value alone says little in a bar's name ("True"): other axes name their key
        name = ", ".join(label(k, v) if k in ("method", "variant") else f"{k.rpartition('.')[2]}={v}"
                         for k, v in zip(by, values) if v is not None)
        swept = [r["path_k"] for r in runs if r.get("path_k")]
        if not (sweep_alone and swept):
            bars.append((name, len(runs), {c: mean([r[f"path_{c}"] for r in runs]) for c in PATH_CLASSES}))
        for k in sorted({k for p in swept for k in p}, key=int):
            at_k = [p[k] for p in swept if k in p]
            bars.append((f"{name}, k = {k}", len(at_k), {c: mean([p[c] for p in at_k]) for c in PATH_CLASSES}))
    return bars


def _accuracy(runs: list[dict]) -> str:
    accs = [100 * r["final_accuracy"] for r in runs]
    if len(runs) > 1:
        return _mean_sd(accs)
    r = runs[0]
    stopped = r.get("planned_epochs") and r["final_epoch"] < r["planned_epochs"]
    return f"{accs[0]:.1f}" + (f" (stopped after epoch {r['final_epoch']} of {r['planned_epochs']})" if stopped else "")


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def sd(xs: list[float]) -> float:
    """The sample standard deviation (0 for one value)."""
    m = mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0


def _mean_sd(xs: list[float]) -> str:
    return f"{mean(xs):.1f} ± {sd(xs):.1f}"


# ----------------------------------------------------------------------------- plots


def plot(lines: list[dict], folder: str, prefix: str = "", by: list[str] | None = None) -> list[str]:
    """The plots of each base config into `folder` (PREFIXBASE_curves.png, _stages,
    _k_sweep, _METHOD_probe, _by_AXIS for a numeric axis, _path_classes); returns their
    paths. Needs matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plots need matplotlib (pip install matplotlib, or coconut[plots])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    written = []

    def name(r, by):
        return ", ".join(label(k, r.get(k)) for k in by) + (f" (seed {r['seed']})" if r.get("seed") else "")

    def save(fig, axes, what, legend_outside=False):
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, **({"loc": "upper left", "bbox_to_anchor": (1.0, 1.0)} if legend_outside else {}))
        fig.tight_layout()
        path = os.path.join(folder, f"{prefix}{base}_{what}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    for base, (keys, groups) in group_by(lines, by).items():
        runs = [r for g in groups.values() for r in g]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
        for r in runs:
            if r.get("loss_steps"):
                ax_loss.plot(*zip(*r["loss_steps"]), label=name(r, keys), lw=0.8)
            else:
                ax_loss.plot([e["global_step"] for e in r["history"]], [e["train_loss"] for e in r["history"]],
                             marker="o", label=name(r, keys))
            ax_acc.plot([e["epoch"] for e in r["history"]], [100 * e["val_accuracy"] for e in r["history"]],
                        marker="o", label=name(r, keys))
        ax_loss.set(xlabel="optimizer step", ylabel="training loss (per supervised token)", yscale="log",
                    title=f"{base}: training curves")
        ax_acc.axhline(50, color="gray", ls="--", lw=1, label="chance: both tasks answer one of two")
        ax_acc.set(xlabel="epoch", ylabel="validation accuracy %", title=f"{base}: accuracy after each epoch",
                   ylim=(0, 100))
        save(fig, (ax_loss, ax_acc), "curves")

        staged = [r for r in runs if r.get("method") in STAGE_CURRICULUM]
        if staged:   # accuracy at the end of each stage
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for r in staged:
                last = {e["stage"]: 100 * e["val_accuracy"] for e in r["history"]}
                ax.plot(sorted(last), [last[s] for s in sorted(last)], marker="o", label=name(r, keys))
            ax.set(xlabel="stage (steps replaced)", ylabel="validation accuracy % at the stage's last epoch",
                   title=f"{base}: accuracy per stage", ylim=(0, 100))
            save(fig, (ax,), "stages")

        swept = [(g, [k_columns(r) for r in g if k_columns(r)]) for g in groups.values()]
        swept = [(g, sweeps) for g, sweeps in swept if sweeps]
        if swept:   # accuracy with k thoughts at inference, the mean over each group's seeds
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for g, sweeps in swept:
                ks = sorted({k for s in sweeps for k in s})
                ax.plot(ks, [100 * mean([s[k] for s in sweeps if k in s]) for k in ks], marker="o",
                        label=", ".join(label(k, g[0].get(k)) for k in keys)
                        + (f" (mean of {len(sweeps)} seeds)" if len(sweeps) > 1 else ""))
            ax.set(xlabel="k thoughts at inference", ylabel="validation accuracy %",
                   title=f"{base}: the k-sweep of the final models", ylim=(0, 100))
            save(fig, (ax,), "k_sweep")

        for method in dict.fromkeys(r.get("method") for r in runs if r.get("probe")):   # the mean over seeds
            probed = [r["probe"] for r in runs if r.get("method") == method and r.get("probe")]
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
            kinds = (("reached", "thought t against the layer at distance t - 1"),
                     ("next", "thought t against the layer at distance t"))
            for ax, (kind, title) in zip(axes, kinds):
                ts = sorted(probed[0][kind], key=int)
                for key, what in (("optimal_mean", "on a shortest path"), ("off_path_mean", "off the paths"),
                                  ("rest_mean", "the other nodes")):
                    values = [[p[kind][t][key] for p in probed if p[kind][t][key] is not None] for t in ts]
                    ax.plot([int(t) + 1 for t in ts], [mean(v) if v else float("nan") for v in values],
                            marker="o", label=f"{what} ({label('method', method)}, {len(probed)} run(s))")
                ax.set(xlabel="thought t", yscale="log",
                       ylabel="mean value (probability of the node's token)", title=f"{base}: {title}")
            save(fig, axes, f"{method}_probe")

        for axis in keys:   # a numeric axis (depth, a rate): final accuracy against it, a line per the rest
            at = keys.index(axis)
            xs = [v[at] for v in groups]
            if len(set(xs)) < 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                continue
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            lines_of: dict = {}
            for values, g in groups.items():
                rest = tuple((k, v) for k, v in zip(keys, values) if k != axis)
                accs = [100 * r["final_accuracy"] for r in g]
                lines_of.setdefault(rest, []).append((values[at], mean(accs), sd(accs), len(accs)))
            for rest, points in lines_of.items():
                points.sort()
                seeds = sorted({n for *_, n in points})
                ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                            capsize=3, label=", ".join(label(k, v) for k, v in rest if v is not None)
                            + f" ({'-'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''})")
            ax.set_xticks(sorted(set(xs)))
            ax.set(xlabel=axis, ylabel="final validation accuracy % (mean ± sd over seeds)", ylim=(0, 100),
                   title=f"{base}: accuracy against {axis}")
            save(fig, (ax,), f"by_{axis.rpartition('.')[2]}")

        bars = path_bars(groups, keys, sweep_alone=True)
        if bars:   # the paper's Figure 5: each bar a group's answers split into the path classes
            fig, ax = plt.subplots(figsize=(max(6.5, 0.3 * len(bars) + 3.5), 5))
            bottom = [0.0] * len(bars)
            for c, color in zip(PATH_CLASSES, ("#2e7d32", "#9ccc65", "#e53935", "#fb8c00", "#1e88e5", "#90a4ae")):
                heights = [100 * f[c] for _, _, f in bars]
                ax.bar(range(len(bars)), heights, bottom=bottom, color=color, label=c.replace("_", " "))
                bottom = [b + h for b, h in zip(bottom, heights)]
            ax.set_xticks(range(len(bars)), [name for name, _, _ in bars], rotation=60, ha="right", fontsize=8)
            ax.set(ylabel="% of the validation questions", ylim=(0, 100),
                   title=f"{base}: reasoning-path classes (mean over seeds)")
            save(fig, (ax,), "path_classes", legend_outside=True)
    return written
