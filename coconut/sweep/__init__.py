"""Sweeps: a grid of training runs from one spec, run on local processes or MPI workers,
resumable, with one tidy results file and a report.

    spec = load_spec("prosqa-cpu-thoughts")        # coconut/sweeps/*.yaml, a YAML path or a mapping
    lines = run_sweep(spec)                        # trains and analyses what is not finished
    print(table(read_results(spec.out + "/results.jsonl"), by=["method"]))

From the shell: `coconut sweep SPEC`, `coconut report RESULTS [--by method] [--plots DIR]`
(a table of the reasoning-path classes follows where the rows have them).
The modules: spec (the format, checked), runner (executors, resume), analyses (after
training), results (the tidy file), report (the table and plots).
"""
from coconut.sweep.report import path_table, plot, table
from coconut.sweep.results import read_results
from coconut.sweep.runner import plan, run_sweep
from coconut.sweep.spec import load_spec

__all__ = ["load_spec", "plan", "run_sweep", "read_results", "table", "path_table", "plot"]
