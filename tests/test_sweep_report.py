"""coconut.sweep.report: the table (mean ± sd over seeds, the best epoch, a stopped row,
the paper's figures), the plots, the earlier benchmarks records read as results lines,
and README.md's results table, which must be what `coconut report` prints for them."""
import json
import os
import re

from coconut.cli import main
from coconut.sweep import plot, read_results, table
from coconut.sweep.results import write_lines

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _line(base, method, seed, accuracies, tokens=9.0, planned=None, **extra):
    history = [{"epoch": e + 1, "stage": e // 2, "train_loss": 1.0 / (e + 1), "val_accuracy": a,
                "global_step": 10 * (e + 1)} for e, a in enumerate(accuracies)]
    best = max(history, key=lambda e: e["val_accuracy"])
    return {"name": f"{base}-{method}" + (f"-seed{seed}" if seed else ""), "base": base, "method": method,
            "seed": seed, "axes": ["method", "seed"], "final_accuracy": accuracies[-1], "final_epoch": len(accuracies),
            "best_accuracy": best["val_accuracy"], "best_epoch": best["epoch"],
            "planned_epochs": planned or len(accuracies), "mean_new_tokens": tokens, "minutes": 12.4,
            "history": history, "loss_steps": [[5, 2.0], [10, 1.0]], **extra}


def test_table_and_plots(tmp_path):
    lines = [_line("prosqa-cpu", "coconut", s, [0.5, a], k0=0.6 + s / 10, k1=a) for s, a in ((0, 0.9), (1, 0.96),
                                                                                         (2, 0.93))]
    lines += [_line("prosqa-cpu", "cot", 0, [0.7, 0.8], tokens=60.25),
              _line("prosqa-cpu-long", "no_cot", 0, [0.6], tokens=2.0, planned=65),
              _line("my-sweep", "coconut", 0, [0.5], **{"recipe.embedding_std": 0.1, "axes": ["method", "seed",
                                                                                               "recipe.embedding_std"]})]
    text = table(lines)
    assert "**prosqa-cpu** (validation: the official ProsQA 300)" in text
    assert "| Coconut | 0, 1, 2 | 93.0 ± 3.0 | 93.0 ± 3.0 | 70.0 93.0 | 9.0 | 12 | 97.0 |" in text
    assert "| CoT | 0 | 80.0 | 80.0 (2) | - | 60.2 | 12 | 77.5 |" in text
    assert "| No-CoT | 0 | 60.0 (stopped after epoch 1 of 65) | 60.0 (1) | 2.0 | 12 | 76.7 |" in text
    # another axis: its own column; a base the paper did not run has no paper column
    assert "| method | recipe.embedding_std | seeds |" in text and "| Coconut | 0.1 | 0 | 50.0 |" in text
    assert "| 90.0 |" in table(lines, by=["name"]) and "| prosqa-cpu-coconut-seed1 | 1 | 96.0 |" in table(lines,
                                                                                                           ["name"])
    # rows that finished in another order: the methods and the seeds still in order
    assert table(lines[::-1]).index("| Coconut |") < table(lines[::-1]).index("| CoT |")
    assert "| Coconut | 0, 1, 2 | 93.0 ± 3.0 |" in table(lines[::-1])
    written = plot(lines, str(tmp_path), prefix="r_")
    for name in ("prosqa-cpu_curves", "prosqa-cpu_stages", "prosqa-cpu_k_sweep", "prosqa-cpu-long_curves"):
        png = tmp_path / f"r_{name}.png"
        assert str(png) in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not (tmp_path / "r_prosqa-cpu-long_stages.png").exists()   # No-CoT has one stage
    assert not (tmp_path / "r_my-sweep_by_embedding_std.png").exists()   # one value: nothing to draw against


def test_a_numeric_axis_gets_accuracy_against_it(tmp_path):
    lines = [_line("depth", method, seed, [a], n_layer=n, axes=["method", "n_layer", "seed"])
             for method in ("coconut", "no_cot") for n, a in ((2, 0.7), (4, 0.8)) for seed in (0, 1)]
    written = plot(lines, str(tmp_path))
    assert str(tmp_path / "depth_by_n_layer.png") in written and (tmp_path / "depth_by_n_layer.png").stat().st_size > 10_000


def test_recorded_results_read_as_results_lines(tmp_path, capsys):
    path = os.path.join(ROOT, "benchmarks", "results", "reproduce_thoughts.json")
    lines = read_results(path)
    coconut = [x for x in lines if x["method"] == "coconut"]
    assert [x["seed"] for x in coconut] == [0, 1, 2] and coconut[0]["name"] == "prosqa-cpu-thoughts-coconut"
    assert [f"k{k}" in coconut[0] for k in range(8)] == [True] * 7 + [False]
    assert abs(coconut[0]["probe_on_path"] - 0.539) < 1e-3 and coconut[0]["probe"]["reached"]["0"]["off_path_mean"] \
        is None   # JSON has no NaN
    # a recorded file and a results.jsonl report alike
    write_lines(str(tmp_path / "results.jsonl"), lines)
    assert read_results(str(tmp_path / "results.jsonl")) == lines
    assert main(["report", str(tmp_path / "results.jsonl")]) == 0
    first = capsys.readouterr().out
    assert main(["report", path]) == 0 and capsys.readouterr().out == first


def test_readme_results_table_is_what_coconut_report_prints(capsys):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    found = re.search(r"<!-- coconut report (.+?) -->\n(.*?)<!-- end of coconut report -->", readme, re.S)
    assert found, "README.md: no section between <!-- coconut report ... --> and <!-- end of coconut report -->"
    args = found.group(1).split()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["report", *args]) == 0
    finally:
        os.chdir(cwd)
    assert found.group(2).strip() == capsys.readouterr().out.strip()


def test_report_refuses_what_is_no_results_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([1, 2]))
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coconut: error: ") and "not a results file" in err and err.count("\n") == 1
