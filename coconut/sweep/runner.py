"""Running a spec's grid: what each row needs (keep, resume, re-run, start), and the rows
handed to a concurrent.futures executor, each trained by coconut.train.Trainer inside
its worker process and analysed there (coconut.sweep.analyses).

    results = run_sweep(load_spec("prosqa-cpu-thoughts"))            # local processes
    mpirun -n K python -m mpi4py.futures -m coconut sweep SPEC       # K - 1 workers, on any host

Executors: "local", a ProcessPoolExecutor of spawned processes (a fresh process per
row where Python allows, 3.11+), cores // threads rows at a time unless `workers` says;
"mpi", mpi4py.futures.MPIPoolExecutor, whose workers are the other ranks of the launch
(a run folder on a file system every host shares). "auto": mpi under an MPI launcher.

Resuming: a row is finished when its results line has the row's config hash and its run
folder holds the final epoch's checkpoint; it is kept, and analysed only for the spec's
analyses its line lacks (an analysis added to a spec after its rows trained). A row
whose latest checkpoint was written with the same config continues from it (`coconut
train --resume`: bitwise where an uninterrupted run ends). A row whose config changed is
trained again from the start, its old folder moved aside to NAME.replaced-N; the plan
says which rows, and which keys changed, before anything runs. A folder that another
live run holds (its run.lock) is never moved: the sweep stops with RunFolderBusy first.
Only the parent process writes results.jsonl, each line under a lock on its folder, so
that sweeps of one out folder (a queue per core) keep each other's lines.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from coconut.checkpoints import list_checkpoints
from coconut.distributed import LAUNCHER_SIZE_VARS
from coconut.run_lock import RunLock
from coconut.sweep.results import RESULTS_FILE, analyses_done, read_lines, update_line
from coconut.sweep.spec import Row, Spec, config_hash

ACTIONS = ("keep", "analyse", "resume", "rerun", "new")


@dataclass
class Planned:
    row: Row
    action: str          # one of ACTIONS
    why: str = ""


@dataclass
class Task:
    """What a worker needs to train and analyse one row (picklable)."""
    row: Row
    resume: bool
    analyses: tuple
    splits: dict
    threads: int
    line: dict | None = None   # a finished row's results line: only `analyses` are run


def plan(spec: Spec) -> list[Planned]:
    """What each row of the grid needs, from the results file and the run folders."""
    recorded = read_lines(os.path.join(spec.out, RESULTS_FILE))
    out = []
    for row in spec.rows:
        h, line = row.config_hash, recorded.get(row.name)
        found = list_checkpoints(row.cfg.save_dir)
        final = [c for c in found if c[1] == 0 and c[0] == row.cfg.num_epochs]
        if line is not None and line.get("config_hash") == h and final:
            missing = missing_analyses(line, spec)
            out.append(Planned(row, "analyse", ", ".join(missing)) if missing else Planned(row, "keep"))
            continue
        saved = _saved_config(found[-1][2]) if found else None
        if saved is not None and config_hash(saved) == h:
            epoch, step = found[-1][:2]
            out.append(Planned(row, "resume", f"from epoch {epoch}" + (f" step {step}" if step else "")))
        elif saved is not None or (line is not None and line.get("config_hash") != h):
            now = row.cfg.to_dict()
            old = saved if saved is not None else {}
            keys = sorted(k for k in now if k != "save_path" and k in old and old[k] != now[k])
            out.append(Planned(row, "rerun", "config changed" + (f": {', '.join(keys)}" if keys else "")))
        else:
            out.append(Planned(row, "new"))
    return out


def describe(planned: list[Planned]) -> str:
    """The plan in a few lines: counts, then every row that resumes or is trained again."""
    counts = {a: sum(p.action == a for p in planned) for a in ACTIONS}
    analyse = f"; {counts['analyse']} to analyse" if counts["analyse"] else ""
    lines = [f"{len(planned)} rows: {counts['keep'] + counts['analyse']} finished (kept{analyse}), "
             f"{counts['resume']} to resume, {counts['rerun']} to re-run (config changed), {counts['new']} new"]
    lines += [f"  analyse {p.row.name} ({p.why})" for p in planned if p.action == "analyse"]
    lines += [f"  re-run {p.row.name} ({p.why})" for p in planned if p.action == "rerun"]
    lines += [f"  resume {p.row.name} ({p.why})" for p in planned if p.action == "resume"]
    return "\n".join(lines)


def run_sweep(spec: Spec, executor: str = "auto", workers: int | None = None, echo=print) -> list[dict]:
    """Train and analyse every row that is not finished; returns the results lines of
    the whole grid (the file keeps lines of rows no longer in the grid too)."""
    planned = plan(spec)
    echo(describe(planned))
    os.makedirs(spec.out, exist_ok=True)
    replaced = [p for p in planned if p.action in ("rerun", "new") and os.path.exists(p.row.cfg.save_dir)]
    with ExitStack() as held:
        # a folder a live run writes (another sweep's row, a lone coconut train) is never
        # moved: RunFolderBusy names it before any folder moves
        for p in replaced:
            held.enter_context(RunLock(p.row.cfg.save_dir))
        for p in replaced:
            aside = _move_aside(p.row.cfg.save_dir)
            echo(f"  {p.row.name}: its earlier folder moved to {os.path.basename(aside)}")
    path = os.path.join(spec.out, RESULTS_FILE)
    lines = read_lines(path)
    todo = []
    for p in planned:
        if p.action == "analyse":
            line = lines[p.row.name]
            todo.append(Task(p.row, False, tuple(missing_analyses(line, spec)), spec.splits, spec.threads, line))
        elif p.action != "keep":
            todo.append(Task(p.row, p.action == "resume", spec.analyses, spec.splits, spec.threads))
    failed = []
    if todo:
        pool = make_executor(executor, spec.threads, workers, len(todo))
        try:
            futures = {pool.submit(train_row, t): t for t in todo}
            for future in as_completed(futures):
                task = futures[future]
                name = task.row.name
                try:
                    line = future.result()
                except Exception as e:   # the row's own error; the other rows go on
                    failed.append(name)
                    echo(f"{name}: failed: {type(e).__name__}: {e} (see {name}.log)")
                    continue
                if line is None:
                    echo(f"{name}: stopped with a checkpoint; run the sweep again to resume it")
                    continue
                lines = update_line(path, line, [r.name for r in spec.rows])
                echo(f"{name}: final accuracy {line['final_accuracy']:.4f} after {line['minutes']:.1f} min "
                     f"on {line['host']}" + (f" (analysed: {', '.join(task.analyses)})" if task.line else ""))
        except KeyboardInterrupt:
            echo("interrupted: waiting for the running rows to write a checkpoint; run the sweep again to resume")
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} rows failed: {', '.join(failed)} (their logs are in "
                           f"{spec.out})")
    return [lines[r.name] for r in spec.rows if r.name in lines]


def make_executor(kind: str, threads: int, workers: int | None, tasks: int):
    """A concurrent.futures executor for the rows: local processes or MPI workers."""
    if kind == "auto":
        kind = "mpi" if under_mpi() else "local"
    if kind == "mpi":
        try:
            from mpi4py.futures import MPIPoolExecutor
        except ImportError:
            raise ValueError("the mpi executor needs mpi4py (pip install mpi4py)") from None
        return MPIPoolExecutor(max_workers=workers) if workers else MPIPoolExecutor()
    if kind != "local":
        raise ValueError(f"executor must be local, mpi or auto, got {kind!r}")
    n = workers or max(1, (os.cpu_count() or 1) // threads)
    extra = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    return ProcessPoolExecutor(max_workers=min(n, tasks), mp_context=multiprocessing.get_context("spawn"), **extra)


def under_mpi() -> bool:
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in LAUNCHER_SIZE_VARS)


def train_row(task: Task) -> dict | None:
    """In the worker: train the row (continuing its latest checkpoint when resuming),
    analyse its final checkpoint, and return its results line (None: stopped by Ctrl-C);
    for a finished row (`task.line`), only the analyses, added to its line.
    Everything the row prints goes to OUT/NAME.log."""
    row = task.row
    os.makedirs(row.cfg.save_path, exist_ok=True)
    log = os.path.join(row.cfg.save_path, f"{row.name}.log")
    with open(log, "a" if task.resume or task.line else "w", encoding="utf-8", buffering=1) as f, \
            redirect_stdout(f), redirect_stderr(f):
        return _train_and_analyse(task)


def _train_and_analyse(task: Task) -> dict | None:
    import coconut
    from coconut.distributed import SingleProcess
    from coconut.sweep.analyses import analyse
    from coconut.sweep.results import analyses_done, finite
    from coconut.train import Trainer
    row = task.row
    coconut.set_num_threads(task.threads)
    if task.line is not None:
        final = final_checkpoint(row)
        print(f"analyses added: {', '.join(task.analyses)} of {final}", flush=True)
        found = analyse(row.cfg, final, task.analyses, task.splits)
        return finite({**task.line, **found, "analyses": sorted(analyses_done(task.line) | set(task.analyses))})
    # one process per row: under an MPI launch the worker is no rank of a data-parallel run
    trainer = Trainer(row.cfg, resume="latest" if task.resume else None, world=SingleProcess(), progress_every=60)
    result = trainer.run()
    if result.interrupted:
        return None
    final = final_checkpoint(row)
    print(f"analyses: {', '.join(task.analyses) or 'none'} of {final}", flush=True)
    return analysed_line(row, final, task.analyses, task.splits, task.threads)


def analysed_line(row, checkpoint: str, analyses, splits: dict, threads: int) -> dict:
    """A trained row's results line: its metrics and `analyses` of `checkpoint`."""
    import coconut
    from coconut.sweep.analyses import analyse
    from coconut.sweep.results import result_line
    found = analyse(row.cfg, checkpoint, analyses, splits)
    return result_line(row, found, analysed=analyses, host=socket.gethostname(), kernels=coconut.blas_info()["core"],
                       threads=threads, finished=time.strftime("%Y-%m-%d %H:%M:%S"))


def final_checkpoint(row) -> str:
    final = [c for c in list_checkpoints(row.cfg.save_dir) if c[1] == 0 and c[0] == row.cfg.num_epochs]
    if not final:
        raise RuntimeError(f"{row.cfg.save_dir}: no checkpoint of epoch {row.cfg.num_epochs}")
    return final[-1][2]


def missing_analyses(line: dict, spec: Spec) -> list[str]:
    """The spec's analyses a finished row's line lacks (splits: any split without its column)."""
    done = analyses_done(line)
    if any(f"split_{name}" not in line for name in spec.splits):
        done.discard("splits")
    return [a for a in spec.analyses if a not in done]


def _saved_config(checkpoint: str) -> dict | None:
    try:
        with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
            return json.load(f)["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _move_aside(folder: str) -> str:
    n = 1
    while os.path.exists(f"{folder}.replaced-{n}"):
        n += 1
    os.rename(folder, f"{folder}.replaced-{n}")
    return f"{folder}.replaced-{n}"
