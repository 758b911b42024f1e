"""benchmarks/reproduce.py: every row's command is a valid run of its method, and the
report turns metrics.jsonl files into the table and the plots."""
import json
import os
import sys

import pytest

from coconut.curriculum import METHODS
from coconut.run_config import load_config
from coconut.build import build_method
from coconut.train import Trainer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import reproduce  # noqa: E402


@pytest.mark.parametrize("row", reproduce.ROWS)
def test_each_row_command_trains_its_method(row):
    preset, method = row.split(":")
    cmd = reproduce.row_command(row)
    assert cmd[:3] == ["coconut", "train", preset] and cmd[3::2] == ["--set"] * len(reproduce.row_overrides(row))
    cfg = load_config(preset, cmd[4::2])
    assert type(build_method(cfg)) is METHODS[method] and cfg.name == f"{preset}-{method}"
    long_schedule = preset in ("prosqa-cpu-long", "prosqa-cpu-fresh", "prosqa-cpu-thoughts")
    if method == "icot":
        assert build_method(cfg).tokens_removed_per_epoch == (1 if long_schedule else 2)
    if preset == "prosqa-cpu-thoughts":
        # 8 epochs a stage, the final one from epoch 49; the label past <eot> only with thoughts
        if method in reproduce.STAGE_CURRICULUM:
            assert [build_method(cfg).stage(e) for e in (7, 8, 47, 48, 63)] == [0, 1, 5, 6, 7]
        assert cfg.recipe["predict_past_eot"] == (method in ("coconut", "no_curriculum"))
        return
    if long_schedule and method in reproduce.STAGE_CURRICULUM:
        # the long schedule: 14 language epochs, then a stage every 6, the final one from epoch 51
        assert [build_method(cfg).stage(e) for e in (13, 14, 49, 50, 64)] == [0, 1, 6, 7, 7]


def _write_run(out, row, accuracies, tokens):
    name = reproduce.run_name(row)
    folder = out / name
    folder.mkdir(parents=True)
    lines = [{"epoch": 1, "step": 5, "loss": 2.0, "tokens_per_s": 100.0}]
    lines += [{"epoch": e + 1, "stage": e // 2, "train_loss": 1.0 / (e + 1), "val_loss": 1.0, "val_accuracy": a,
               "mean_new_tokens": tokens, "global_step": 10 * (e + 1)} for e, a in enumerate(accuracies)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (out / f"{name}.run.json").write_text(json.dumps({"wall_minutes": 12.4, "threads": 1}))


def test_report_table_and_plots(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    _write_run(runs, "prosqa-cpu:coconut", [0.5, 0.9, 0.8], 9.0)
    _write_run(runs, "prontoqa-cpu:cot", [0.7, 0.75], 60.25)
    _write_run(runs, "prosqa-cpu-long:no_cot", [0.6], 2.0)
    stopped = runs / "prosqa-cpu-long-no_cot" / "checkpoint_1"   # a run of 65 epochs stopped after 1
    stopped.mkdir()
    (stopped / "trainer_state.json").write_text(json.dumps({"config": {"num_epochs": 65}}))
    rows = reproduce.report(str(runs), str(results))
    by_row = {r["row"]: r for r in rows}
    assert set(by_row) == {"prosqa-cpu:coconut", "prontoqa-cpu:cot", "prosqa-cpu-long:no_cot"}   # rows without a run are left out
    coconut = by_row["prosqa-cpu:coconut"]
    # the final epoch is the reported accuracy; the best epoch is shown beside it
    assert (coconut["accuracy"], coconut["best_accuracy"], coconut["best_epoch"]) == (0.8, 0.9, 2)
    table = (results / "reproduce.md").read_text()
    # no checkpoint to read the tokenization from: the thought count is not known
    assert "| Coconut | 80.0 | 9.0 + - | 2 (90.0) | 97.0 (14.2) | 12 | `coconut train prosqa-cpu --set method=coconut" in table
    assert "| CoT | 75.0 | 60.2 + - | 2 (75.0) | 98.8 (92.5) |" in table
    assert "**prosqa-cpu-long** (validation: the official ProsQA 300)" in table
    assert "| No-CoT | 60.0 (stopped after epoch 1 of 65) | 2.0 + - | 1 (60.0) | 76.7 (8.2) |" in table
    assert json.loads((results / "reproduce.json").read_text())["rows"][0]["row"] == "prosqa-cpu:coconut"
    for name in ("prosqa-cpu_curves", "prosqa-cpu_stages", "prontoqa-cpu_curves", "prosqa-cpu-long_curves"):
        png = results / f"reproduce_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not (results / "reproduce_prontoqa-cpu_stages.png").exists()   # CoT has one stage


def test_thoughts_are_counted_from_a_real_run(tmp_path, monkeypatch):
    """A one-epoch w/o-curriculum run at toy size: its prompts carry the final stage's 6
    thoughts; CoT's carry none."""
    monkeypatch.delenv("COCONUT_DATA", raising=False)   # the packaged validation split
    for method in ("no_curriculum", "cot"):
        toy = ["generate.n=8", "num_epochs=1", "n_layer=1", "n_embd=16", "n_head=2", "max_new_tokens=4",
               f"save_path={tmp_path}"]
        Trainer(load_config("prosqa-cpu", reproduce.row_overrides(f"prosqa-cpu:{method}") + toy), verbose=False).run()
    rows = {r["method"]: r for r in reproduce.report(str(tmp_path), str(tmp_path / "results"))}
    assert rows["no_curriculum"]["mean_thoughts"] == 6.0 and rows["cot"]["mean_thoughts"] == 0.0
    # metrics written before the trainer recorded the count: it is rebuilt from the checkpoint
    for method in ("no_curriculum", "cot"):
        path = tmp_path / f"prosqa-cpu-{method}" / "metrics.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "mean_thoughts"}) + "\n"
                                for x in lines))
    rows = {r["method"]: r for r in reproduce.report(str(tmp_path), str(tmp_path / "results"))}
    assert rows["no_curriculum"]["mean_thoughts"] == 6.0 and rows["cot"]["mean_thoughts"] == 0.0
    # analyse: the k-sweep at the trained count equals the final epoch's own evaluation;
    # the probe is there for the row with continuous thoughts only
    for method in ("no_curriculum", "cot"):
        reproduce.analyse(str(tmp_path), f"prosqa-cpu:{method}")
    rows = {r["method"]: r for r in reproduce.report(str(tmp_path), str(tmp_path / "results"))}
    assert sorted(rows["no_curriculum"]["k_sweep"], key=int) == [str(k) for k in range(7)]
    assert rows["no_curriculum"]["k_sweep"]["6"] == rows["no_curriculum"]["accuracy"]
    assert rows["cot"]["k_sweep"] == {"0": rows["cot"]["accuracy"]}     # no thoughts to sweep
    probe = rows["no_curriculum"]["probe"]
    assert sorted(probe) == ["by_depth", "next", "reached"] and sorted(probe["next"], key=int) == list("012345")
    assert 0.0 <= probe["next"]["0"]["frontier_mean"] <= 1.0 and rows["cot"]["probe"] is None
    assert len(probe["by_depth"]) == 6 and len(probe["by_depth"][0]) == 7
    assert "k = 0..6 thoughts %" in (tmp_path / "results" / "reproduce.md").read_text()
    for name in ("k_sweep", "no_curriculum_probe"):
        assert (tmp_path / "results" / f"reproduce_prosqa-cpu_{name}.png").stat().st_size > 10_000


def test_seeds_name_their_runs_and_the_table_shows_mean_and_spread(tmp_path):
    assert reproduce.with_seeds(["prosqa-cpu-thoughts:cot"], [0, 2]) == ["prosqa-cpu-thoughts:cot",
                                                                         "prosqa-cpu-thoughts:cot:seed2"]
    assert reproduce.run_name("prosqa-cpu-thoughts:cot:seed2") == "prosqa-cpu-thoughts-cot-seed2"
    assert reproduce.row_overrides("prosqa-cpu:coconut:seed2")[:3] == ["method=coconut",
                                                                       "name=prosqa-cpu-coconut-seed2", "seed=2"]
    with pytest.raises(ValueError):
        reproduce.split_row("prosqa-cpu:coconut:2")
    runs, results = tmp_path / "runs", tmp_path / "results"
    for seed, final in ((0, 0.9), (1, 0.96), (2, 0.93)):
        _write_run(runs, "prosqa-cpu:coconut" + (f":seed{seed}" if seed else ""), [0.5, final], 9.0)
    rows = reproduce.report(str(runs), str(results))
    assert [r["seed"] for r in rows] == [0, 1, 2]
    table = (results / "reproduce.md").read_text()
    assert "| Coconut | 93.0 ± 3.0 (seeds 0, 1, 2: 90.0, 96.0, 93.0) | 9.0 + - | 2 (90.0); 2 (96.0); 2 (93.0) |" \
        in table


def test_merge_keeps_recorded_runs_and_replaces_those_run_again(tmp_path):
    """report --merge: runs recorded earlier (their folders gone) stay in the table beside
    the new ones, in the rows' order; a run that is in --out again replaces its record."""
    first, second, results = tmp_path / "first", tmp_path / "second", tmp_path / "results"
    _write_run(first, "prosqa-cpu:cot", [0.5, 0.8], 20.0)
    _write_run(first, "prosqa-cpu:coconut", [0.5, 0.9], 9.0)
    reproduce.report(str(first), str(results))
    _write_run(second, "prosqa-cpu:coconut", [0.5, 0.7], 9.0)
    _write_run(second, "prosqa-cpu:coconut:seed1", [0.5, 0.9], 9.0)
    rows = reproduce.report(str(second), str(results))   # without merge: only what --out holds
    assert [r["run"] for r in rows] == ["prosqa-cpu:coconut", "prosqa-cpu:coconut:seed1"]
    reproduce.report(str(first), str(results))
    rows = reproduce.report(str(second), str(results), merge=True)
    assert [(r["run"], r["accuracy"]) for r in rows] == [("prosqa-cpu:coconut", 0.7), ("prosqa-cpu:coconut:seed1", 0.9),
                                                         ("prosqa-cpu:cot", 0.8)]
    table = (results / "reproduce.md").read_text()
    assert "| Coconut | 80.0 ± 14.1 (seeds 0, 1: 70.0, 90.0) |" in table and "| CoT | 80.0 | 20.0 + - |" in table
    assert json.loads((results / "reproduce.json").read_text())["rows"] == rows


def test_run_resume_continues_stopped_rows(tmp_path, monkeypatch):
    """`run --resume`: a row with a checkpoint gets --resume, keeps its log and adds its
    minutes to those recorded; a row without one starts afresh."""
    calls = []

    def fake_call(cmd, stdout, **kwargs):
        calls.append(cmd)
        stdout.write("second part\n")
        return 0

    monkeypatch.setattr(reproduce.subprocess, "call", fake_call)
    stopped = tmp_path / "prosqa-cpu-fresh-no_cot" / "checkpoint_21_step1"
    stopped.mkdir(parents=True)
    (stopped / "trainer_state.json").write_text(json.dumps({"epoch": 21, "step_in_epoch": 1}))
    (tmp_path / "prosqa-cpu-fresh-no_cot.log").write_text("first part\n")
    (tmp_path / "prosqa-cpu-fresh-no_cot.run.json").write_text(json.dumps({"wall_minutes": 30.0}))
    (tmp_path / "prosqa-cpu-fresh-icot.log").write_text("an old log\n")
    reproduce.run_rows(["prosqa-cpu-fresh:no_cot", "prosqa-cpu-fresh:icot"], str(tmp_path), 1, 1, resume=True)
    by_method = {c[c.index("--set") + 1]: c for c in calls}
    assert by_method["method=no_cot"][-1] == "--resume" and "--resume" not in by_method["method=icot"]
    assert (tmp_path / "prosqa-cpu-fresh-no_cot.log").read_text() == "first part\nsecond part\n"
    assert (tmp_path / "prosqa-cpu-fresh-icot.log").read_text() == "second part\n"
    minutes = json.loads((tmp_path / "prosqa-cpu-fresh-no_cot.run.json").read_text())["wall_minutes"]
    assert 30.0 <= minutes < 31.0
    calls.clear()
    reproduce.run_rows(["prosqa-cpu-fresh:no_cot"], str(tmp_path), 1, 1)   # without --resume: from the start
    assert "--resume" not in calls[0] and (tmp_path / "prosqa-cpu-fresh-no_cot.log").read_text() == "second part\n"
