"""The tidy results file: OUT/results.jsonl, one line per run, so that
`pandas.read_json(path, lines=True)` (or a loop over `json.loads`) reads a whole sweep.

Columns: `name`, `base`, the spec's axes (`method`, `seed`, `recipe.embedding_std`, ...;
`axes` lists them), `config_hash` (coconut.sweep.spec.config_hash of the row's config),
`final_accuracy`, `final_epoch`, `best_accuracy`, `best_epoch`, `planned_epochs`,
`mean_new_tokens`, `mean_thoughts`, `analyses` (those that ran), the k-sweep as
`k0..kN`, the probe's summary (`probe_on_path`, `probe_off_path`, `probe_rest`: thought
2's values of the nodes it has reached, and the whole probe in `probe`), the path
classes as `path_CLASS` fractions (and after each k: `path_k`), the extra splits as
`split_NAME` accuracies, `tokens_trained`, `minutes` (training, every epoch's wall
time), `host`, `kernels` (coconut.blas_info()["core"]), `threads`, `run_dir`, `finished`
(a time), and the curves the plots draw: `history` (per epoch: epoch, stage, train_loss,
val_accuracy, global_step) and `loss_steps` ([step, loss] pairs, with log_every_steps).
A run's last line wins, so a file may be rewritten row by row.

The benchmarks' earlier records (benchmarks/results/reproduce*.json: {"time", "rows"})
read as the same columns (`read_results`), so `coconut report` takes either.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager

RESULTS_FILE = "results.jsonl"
HISTORY_KEYS = ("epoch", "stage", "train_loss", "val_accuracy", "global_step")


def epoch_lines(save_dir: str) -> tuple[list[dict], list[dict]]:
    """A run's metrics.jsonl: its epoch lines (the last of each epoch, for a run that was
    resumed) and its step lines."""
    path = os.path.join(save_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return [], []
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    epochs = {x["epoch"]: x for x in lines if "val_accuracy" in x and "step" not in x}
    steps = {x["step"]: x for x in lines if "step" in x and "loss" in x}
    return [epochs[e] for e in sorted(epochs)], [steps[s] for s in sorted(steps)]


def result_line(row, analyses: dict, *, analysed, host: str, kernels: str, threads: int, finished: str) -> dict:
    """The results line of a trained row (a coconut.sweep.spec.Row) from its metrics and
    the analyses' results (`analysed`: the analyses that ran)."""
    epochs, steps = epoch_lines(row.cfg.save_dir)
    final = epochs[-1]
    best = max(epochs, key=lambda x: x["val_accuracy"])
    line = {"name": row.name, "base": row.base_name, **row.values, "axes": list(row.values),
            "config_hash": row.config_hash,
            "final_accuracy": final["val_accuracy"], "final_epoch": final["epoch"],
            "best_accuracy": best["val_accuracy"], "best_epoch": best["epoch"], "planned_epochs": row.cfg.num_epochs,
            "mean_new_tokens": final["mean_new_tokens"], "mean_thoughts": final.get("mean_thoughts")}
    line.update(analyses)
    line.update({"analyses": sorted(analysed), "tokens_trained": sum(e.get("tokens", 0) for e in epochs),
                 "minutes": sum(sum(e.get("seconds", {}).values()) for e in epochs) / 60,
                 "host": host, "kernels": kernels, "threads": threads, "run_dir": row.cfg.save_dir,
                 "finished": finished,
                 "history": [{k: e.get(k) for k in HISTORY_KEYS} for e in epochs],
                 "loss_steps": [[s["step"], s["loss"]] for s in steps]})
    return finite(line)


def analyses_done(line: dict) -> set[str]:
    """The analyses a results line holds: its `analyses`, or for a line written before
    that column, what its columns show."""
    if "analyses" in line:
        return set(line["analyses"])
    shown = {"k_sweep": bool(k_columns(line)), "probe": "probe" in line,
             "path_classes": any(c.startswith("path_") for c in line),
             "splits": any(c.startswith("split_") for c in line)}
    return {a for a, there in shown.items() if there}


def finite(value):
    """NaN and infinities as null (JSON has neither; a probe's empty group is NaN)."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def read_lines(path: str) -> dict[str, dict]:
    """name -> line of a results.jsonl (the last line of a name wins); {} without the file."""
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.strip():
                try:
                    line = json.loads(text)
                except ValueError as e:
                    raise ValueError(f"{path}: line {n}: not JSON ({e})") from None
                out[line["name"]] = line
    return out


def write_lines(path: str, lines: list[dict]) -> None:
    """Replace the file with these lines, atomically (a reader never sees half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    os.replace(tmp, path)


def update_line(path: str, line: dict, order=()) -> dict[str, dict]:
    """Put one run's line into the file and return all of them: the file is read again
    under a lock, so sweeps that share an out folder (a queue per core) keep each other's
    lines. `order`: names that come first, in that order."""
    with _locked(path):
        lines = read_lines(path)
        lines[line["name"]] = line
        names = [n for n in order if n in lines] + [n for n in lines if n not in order]
        write_lines(path, [lines[n] for n in names])
    return lines


@contextmanager
def _locked(path: str):
    """The file's folder locked (flock: released if the holder dies; no lock file left)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def read_results(path: str) -> list[dict]:
    """The runs of a results.jsonl, or of an earlier benchmarks record (a .json of
    {"time", "rows"}) read as the same columns."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
            raise ValueError(f"{path}: not a results file (a results.jsonl, or a record with 'rows')")
        return [finite(from_record(r)) for r in record["rows"]]
    return list(read_lines(path).values())


def from_record(r: dict) -> dict:
    """An earlier benchmarks record's row (benchmarks/reproduce.py's report) as a results line."""
    seed = r.get("seed", 0)
    line = {"name": r["preset"] + "-" + r["method"] + (f"-seed{seed}" if seed else ""), "base": r["preset"],
            "method": r["method"], "seed": seed, "axes": ["method", "seed"], "config_hash": None,
            "final_accuracy": r["accuracy"], "final_epoch": r["final_epoch"], "best_accuracy": r["best_accuracy"],
            "best_epoch": r["best_epoch"], "planned_epochs": r.get("planned_epochs"),
            "mean_new_tokens": r["mean_new_tokens"], "mean_thoughts": r.get("mean_thoughts")}
    line.update({f"k{k}": v for k, v in sorted((r.get("k_sweep") or {}).items(), key=lambda kv: int(kv[0]))})
    if r.get("probe"):
        line.update(probe_summary(r["probe"]))
    line.update({"tokens_trained": None, "minutes": r.get("wall_minutes"), "host": None, "kernels": None,
                 "threads": r.get("threads"), "run_dir": None, "finished": None, "command": r.get("command"),
                 "history": [{k: e.get(k) for k in HISTORY_KEYS} for e in r.get("epochs", [])],
                 "loss_steps": [[s["step"], s["loss"]] for s in r.get("steps", [])]})
    return line


def probe_summary(probe: dict) -> dict:
    """The probe's columns: thought 2 (or the last there is) against the layer it has
    reached, on and off a shortest path and the other nodes; the whole probe beside them."""
    reached = probe["reached"]
    t = "1" if "1" in reached else (1 if 1 in reached else sorted(reached, key=int)[-1])
    return {"probe_on_path": reached[t]["optimal_mean"], "probe_off_path": reached[t]["off_path_mean"],
            "probe_rest": reached[t]["rest_mean"], "probe": probe}


def k_columns(line: dict) -> dict[int, float]:
    """The k-sweep of a results line: {k: accuracy}."""
    ks = sorted(int(c[1:]) for c in line if c[:1] == "k" and c[1:].isdigit() and line[c] is not None)
    return {k: line[f"k{k}"] for k in ks}
