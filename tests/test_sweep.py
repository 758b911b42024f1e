"""coconut.sweep: the spec (its grid, per-row options, errors naming file, line and key),
the shipped specs' rows, two tiny rows trained in parallel processes into one tidy
results file, and resuming: finished rows kept, a stopped row continued bitwise, a
changed row named and trained again."""
import json
import os
import shutil

import pytest

from coconut.analysis.path_classes import PATH_CLASSES
from coconut.build import build_method, build_recipe
from coconut.cli import main
from coconut.curriculum import METHODS
from coconut.run_config import ConfigError
from coconut.recipes import Recipe
from coconut.sweep import load_spec, plan, run_sweep
from coconut.sweep.report import STAGE_CURRICULUM
from coconut.sweep.runner import describe, make_executor
from coconut.sweep.spec import shipped_specs
from test_train import BASE

TINY = {"base": {**BASE, "name": "tiny"}, "axes": {"method": ["coconut", "cot"]},
        "analyses": ["k_sweep", "probe", "path_classes"], "threads": 1}


def test_the_grid_is_the_product_of_the_axes_with_options(tmp_path):
    spec = load_spec({"base": "prosqa-cpu", "out": str(tmp_path),
                      "axes": {"method": ["coconut", "icot"], "seed": [0, 2], "recipe.embedding_std": [0.05, 0.1]},
                      "set": {"num_epochs": 4},
                      "options": [{"when": {"method": "icot"}, "set": {"method_options.tokens_removed_per_epoch": 3}},
                                  {"when": {"method": "coconut", "seed": [2]}, "set": {"lr": 0.5}}]})
    assert len(spec.rows) == 8
    row = spec.rows[-1]
    assert row.name == "prosqa-cpu-icot-seed2-embedding_std0.1"
    assert row.values == {"method": "icot", "seed": 2, "recipe.embedding_std": 0.1}
    cfg = row.cfg
    assert (cfg.method, cfg.seed, cfg.recipe["embedding_std"], cfg.num_epochs) == ("icot", 2, 0.1, 4)
    assert build_method(cfg).tokens_removed_per_epoch == 3 and cfg.save_dir == os.path.join(tmp_path, row.name)
    lrs = {r.name: r.cfg.lr for r in spec.rows if r.values["method"] == "coconut"}
    assert lrs["prosqa-cpu-coconut-embedding_std0.05"] != 0.5 and lrs["prosqa-cpu-coconut-seed2-embedding_std0.05"] == 0.5
    assert spec.rows[0].name == "prosqa-cpu-coconut-embedding_std0.05"   # seed 0 leaves no part in the name
    assert len({r.config_hash for r in spec.rows}) == 8


def test_variants_are_one_more_axis_of_named_settings(tmp_path):
    """One factor at a time: each variant a set of keys, its name the row's last part and
    the `variant` column; options may match it."""
    spec = load_spec({"base": "prosqa-cpu-thoughts", "out": str(tmp_path),
                      "axes": {"method": ["coconut", "no_thought"], "seed": [0, 1]},
                      "variants": {"preset": {}, "reset": {"reset_optimizer": True},
                                   "stages": {"epochs_per_stage": 6, "first_stage_epochs": 14}},
                      "options": [{"when": {"method": "no_thought"}, "set": {"recipe.predict_past_eot": False}},
                                  {"when": {"method": "coconut", "variant": "reset"}, "set": {"lr": 5e-4}}]})
    rows = {r.name: r for r in spec.rows}
    assert len(rows) == 12 and list(rows)[:3] == ["prosqa-cpu-thoughts-coconut-preset",
                                                  "prosqa-cpu-thoughts-coconut-reset",
                                                  "prosqa-cpu-thoughts-coconut-stages"]
    preset, reset = rows["prosqa-cpu-thoughts-coconut-seed1-preset"], rows["prosqa-cpu-thoughts-coconut-seed1-reset"]
    assert preset.values == {"method": "coconut", "seed": 1, "variant": "preset"}
    assert (preset.cfg.reset_optimizer, preset.cfg.lr, reset.cfg.reset_optimizer, reset.cfg.lr) == \
        (False, 1e-3, True, 5e-4)
    stages = rows["prosqa-cpu-thoughts-no_thought-stages"].cfg
    assert (stages.epochs_per_stage, stages.first_stage_epochs, stages.lr, stages.recipe["predict_past_eot"]) == \
        (6, 14, 1e-3, False)
    assert rows["prosqa-cpu-thoughts-no_thought-reset"].cfg.lr == 1e-3   # the option's `when` names coconut


def test_the_ablation_gap_depth_and_baseline_specs():
    """The gap spec's variants are the fresh recipe's differences one at a time, and
    `fresh` trains what prosqa-cpu-fresh does; depth changes the layers alone; the
    baselines' search keeps the data and step budget."""
    gap = {r.name: r.cfg for r in load_spec("prosqa-cpu-thoughts-gap").rows}
    assert len(gap) == 16
    fresh, preset = gap["prosqa-cpu-thoughts-no_thought-fresh"], gap["prosqa-cpu-thoughts-no_thought-preset"]
    target = load_spec("prosqa-cpu-fresh", overrides=["axes.method=[no_thought]"]).rows[0].cfg.to_dict()
    differ = {k for k, v in fresh.to_dict().items() if v != target[k]}
    assert differ == {"name", "save_path", "recipe"}
    # the recipe written out option by option is prosqa-cpu-fresh's, which keeps the defaults
    fresh_values, target_values, defaults = ([(o.key, o.value) for o in Recipe(r).options]
                                             for r in (fresh.recipe, target["recipe"], {}))
    assert fresh_values == target_values == defaults
    for variant, cfg in gap.items():
        if "no_thought" in variant and not variant.endswith(("fresh", "preset")):
            assert 1 <= len({k for k, v in cfg.to_dict().items() if v != preset.to_dict()[k]} - {"name"}) <= 2
    depth = load_spec("prosqa-cpu-thoughts-depth").rows
    assert [r.cfg.n_layer for r in depth[:3]] == [2, 4, 6] and len(depth) == 12
    assert {(r.cfg.n_embd, r.cfg.n_head, r.cfg.num_epochs, r.cfg.generate.n) for r in depth} == {(128, 4, 64, 12000)}
    baselines = load_spec("prosqa-cpu-thoughts-baselines").rows
    assert {(r.cfg.num_epochs, r.cfg.generate.n, r.cfg.batch_size_training) for r in baselines} == {(64, 12000, 16)}
    assert sorted({r.cfg.lr for r in baselines}) == [5e-4, 1e-3, 2e-3]


@pytest.mark.parametrize("name", shipped_specs())
def test_every_shipped_spec_row_has_a_valid_recipe(name):
    """What a row's run checks first: a shipped spec whose row sets an option to a value
    the recipe refuses fails only when that row starts training."""
    for row in load_spec(name).rows:
        build_recipe(row.cfg)


@pytest.mark.parametrize("name", ["prosqa-cpu", "prosqa-cpu-long", "prosqa-cpu-fresh", "prosqa-cpu-thoughts",
                                  "prosqa-cpu-fixed", "prontoqa-cpu"])
def test_each_shipped_spec_row_trains_its_method(name):
    """The presets' tables: every row's config is a valid run of its method, with the
    options a row needs (iCoT's pace, no label past <eot> without continuous thoughts)."""
    assert name in shipped_specs()
    spec = load_spec(name)
    for row in spec.rows:
        cfg, method = row.cfg, row.values["method"]
        assert type(build_method(cfg)) is METHODS[method] and cfg.name == f"{name}-{method}"
        long_schedule = name in ("prosqa-cpu-long", "prosqa-cpu-fresh", "prosqa-cpu-thoughts", "prosqa-cpu-fixed")
        if method == "icot":
            assert build_method(cfg).tokens_removed_per_epoch == (1 if long_schedule else 2)
        if name == "prosqa-cpu-thoughts":
            # 8 epochs a stage, the final one from epoch 49; the label past <eot> only with thoughts
            if method in STAGE_CURRICULUM:
                assert [build_method(cfg).stage(e) for e in (7, 8, 47, 48, 63)] == [0, 1, 5, 6, 7]
            assert cfg.recipe["predict_past_eot"] == (method in ("coconut", "no_curriculum"))
        elif name == "prosqa-cpu-fixed":
            # 5 epochs a stage, the final one from epoch 36 of 43; one fixed set, the same steps
            if method in STAGE_CURRICULUM:
                assert [build_method(cfg).stage(e) for e in (4, 5, 29, 30, 34, 35, 42)] == [0, 1, 5, 6, 6, 7, 7]
            assert cfg.generate.n == 17886 and not cfg.generate.fresh_each_epoch
            steps = cfg.num_epochs * -(-cfg.generate.n // cfg.batch_size_training)
            assert steps == 48074 and abs(steps - 64 * 750) / (64 * 750) < 0.002   # prosqa-cpu-thoughts' 48,000
            assert cfg.recipe["predict_past_eot"] == (method in ("coconut", "no_curriculum"))
        elif name == "prontoqa-cpu":
            assert cfg.recipe["predict_past_eot"] == (method == "coconut")
        elif long_schedule and method in STAGE_CURRICULUM:
            # 14 language epochs, then a stage every 6, the final one from epoch 51
            assert [build_method(cfg).stage(e) for e in (13, 14, 49, 50, 64)] == [0, 1, 6, 7, 7]
    assert [r.name for r in load_spec(name, overrides=["axes.seed=[0, 1]"]).rows][:2] == \
        [f"{name}-coconut", f"{name}-coconut-seed1"]


def _spec_file(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("base: prosqa-cpu\naxes:\n  method: [coconut]\n  lrr: [1, 2]\n", "line 4: key 'axes.lrr': not a config key (did you mean 'lr'?)"),
    ("base: prosqa-cpu\naxes:\n  method: coconut\n", "line 3: key 'axes.method': expected a non-empty list"),
    ("base: prosqa-cpu\naxis: {}\n", "line 2: key 'axis': unknown key (did you mean 'axes'?)"),
    ("base: prosqa-cpu\nanalyses: [k_sweeps]\n", "unknown analysis 'k_sweeps' (did you mean 'k_sweep'?)"),
    ("base: prosqa-cpu\nanalyses: [splits]\n", "the splits analysis needs 'splits:"),
    ("base: prosqa-cpu\naxes:\n  method: [coconut, telepathy]\n", "row prosqa-cpu-telepathy"),
    ("base: prosqa-cpu\nset:\n  name: x\n", "line 3: key 'set.name': the sweep sets 'name' itself"),
    ("base: prosqa-cpu\noptions:\n  - when: {seed: 1}\n    set: {lr: 1}\n", "'seed' is neither an axis"),
    ("base: no-such-preset\n", "no-such-preset: cannot read the config"),
    ("axes: {}\n", "no 'base'"),
    ("base: prosqa-cpu\nthreads: 0\n", "line 2: key 'threads': expected a number of threads >= 1"),
    ("base: prosqa-cpu\nvariants:\n  fast: {lrr: 1}\n", "line 3: key 'variants.fast': key 'lrr': not a config key"),
    ("base: prosqa-cpu\naxes:\n  lr: [1, 2]\nvariants:\n  fast: {lr: 3}\n", "'lr' is an axis"),
    ("base: prosqa-cpu\nvariants:\n  a b: {}\n", "a variant's name is letters"),
    ("base: prosqa-cpu\nvariants:\n  fast: 3\n", "line 3: key 'variants.fast': expected a mapping"),
])
def test_a_bad_spec_is_one_line_naming_file_line_and_key(tmp_path, capsys, text, message):
    path = _spec_file(tmp_path, text)
    with pytest.raises(ConfigError, match=None) as e:
        load_spec(path)
    assert str(e.value).startswith(path) and message in str(e.value), str(e.value)
    assert main(["sweep", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coconut: error: ") and err.count("\n") == 1 and message in err


def test_the_local_executor_fills_the_cores():
    pool = make_executor("local", threads=1, workers=None, tasks=100)
    assert pool._max_workers == (os.cpu_count() or 1)
    pool.shutdown()
    assert make_executor("local", threads=64, workers=None, tasks=3)._max_workers == 1


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Two tiny rows trained at once, each in a process of its own."""
    out = tmp_path_factory.mktemp("sweep")
    spec = load_spec({**TINY, "out": str(out)})
    lines = run_sweep(spec, "local", workers=2, echo=lambda _: None)
    return spec, lines


def test_rows_train_in_parallel_into_one_tidy_file(swept):
    spec, lines = swept
    pd = pytest.importorskip("pandas")
    table = pd.read_json(os.path.join(spec.out, "results.jsonl"), lines=True)
    assert list(table["name"]) == ["tiny-coconut", "tiny-cot"] and list(table["method"]) == ["coconut", "cot"]
    for column in ("final_accuracy", "best_accuracy", "best_epoch", "final_epoch", "k0", "tokens_trained", "minutes",
                   "host", "kernels", "threads", "config_hash", "path_correct_path"):
        assert column in table.columns, column
    coconut, cot = lines
    assert [f"k{k}" in coconut for k in range(4)] == [True, True, True, False]   # 0..max_latent_stage thoughts
    assert "k1" not in cot and cot["k0"] == cot["final_accuracy"]   # no thoughts: its own prompt is k = 0
    assert coconut["k2"] == coconut["final_accuracy"]   # the final stage's 2 thoughts
    assert coconut["probe"] and 0 <= coconut["probe_on_path"] <= 1 and "probe" not in cot
    assert abs(sum(coconut[f"path_{c}"] for c in ("correct_path", "longer_path", "hallucination", "wrong_target",
                                                  "correct_label", "incorrect_label")) - 1) < 1e-9
    # the path classes after each k of the sweep; k = 2 is the final model's own prompt
    assert sorted(coconut["path_k"]) == ["0", "1", "2"] and "path_k" not in cot
    assert all(abs(sum(f.values()) - 1) < 1e-9 for f in coconut["path_k"].values())
    assert coconut["path_k"]["2"] == {c: coconut[f"path_{c}"] for c in coconut["path_k"]["2"]}
    assert coconut["analyses"] == cot["analyses"] == ["k_sweep", "path_classes", "probe"]
    assert coconut["tokens_trained"] == sum(e["tokens"] for e in map(json.loads, open(
        os.path.join(spec.out, "tiny-coconut", "metrics.jsonl"))))
    assert [e["epoch"] for e in coconut["history"]] == [1, 2, 3] and coconut["threads"] == 1
    assert "epoch 3/3" in open(os.path.join(spec.out, "tiny-coconut.log")).read()   # the row's own log


def test_a_rerun_keeps_finished_rows_and_resumes_a_stopped_one_bitwise(swept, tmp_path):
    spec, lines = swept
    out = tmp_path / "out"
    shutil.copytree(spec.out, out)
    spec = load_spec({**TINY, "out": str(out)})
    assert [p.action for p in plan(spec)] == ["keep", "keep"]
    final = (out / "tiny-coconut" / "checkpoint_3" / "model.safetensors").read_bytes()
    # stopped after its first epoch: later checkpoints and its results line gone
    for n in (2, 3):
        shutil.rmtree(out / "tiny-coconut" / f"checkpoint_{n}")
    (out / "results.jsonl").write_text(json.dumps(lines[1]) + "\n")
    assert [(p.action, p.why) for p in plan(spec)] == [("resume", "from epoch 1"), ("keep", "")]
    again = run_sweep(spec, "local", echo=lambda _: None)
    assert (out / "tiny-coconut" / "checkpoint_3" / "model.safetensors").read_bytes() == final
    assert again[0]["final_accuracy"] == lines[0]["final_accuracy"] and again[1] == lines[1]
    assert "resuming from" in (out / "tiny-coconut.log").read_text()
    assert again[0]["tokens_trained"] == lines[0]["tokens_trained"]   # every epoch's, resumed or not

    # a changed spec says which rows it trains again, and why, before anything runs
    changed = load_spec({**TINY, "out": str(out), "options": [{"when": {"method": "cot"}, "set": {"lr": 0.01}}]})
    planned = plan(changed)
    assert [(p.action, p.why) for p in planned] == [("keep", ""), ("rerun", "config changed: lr")]
    assert "1 to re-run (config changed)" in describe(planned) and "re-run tiny-cot (config changed: lr)" in \
        describe(planned)


def test_a_finished_row_gains_a_new_analysis_without_training(swept, tmp_path):
    """Lines written before their spec asked for path classes (and before the `analyses`
    column): the rerun runs only what each line lacks on the final checkpoint, and gets
    what training with the analysis would have written."""
    spec, lines = swept
    out = tmp_path / "out"
    shutil.copytree(spec.out, out)
    older = [{k: v for k, v in line.items() if not k.startswith("path_") and k != "analyses"} for line in lines]
    (out / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in older))
    model = (out / "tiny-coconut" / "checkpoint_3" / "model.safetensors").read_bytes()
    spec = load_spec({**TINY, "out": str(out)})
    planned = plan(spec)
    assert [(p.action, p.why) for p in planned] == [("analyse", "path_classes"), ("analyse", "probe, path_classes")]
    assert "2 finished (kept; 2 to analyse)" in describe(planned)
    again = run_sweep(spec, "local", echo=lambda _: None)
    assert again == lines   # the same columns as when the rows trained, their history and times kept
    assert (out / "tiny-coconut" / "checkpoint_3" / "model.safetensors").read_bytes() == model
    assert [p.action for p in plan(spec)] == ["keep", "keep"]


def test_lone_run_folders_get_the_rows_path_classes(swept, tmp_path):
    """benchmarks/path_class_rows.py: a run folder outside any sweep, analysed as the
    sweep analysed its row."""
    import subprocess
    import sys
    spec, lines = swept
    out = tmp_path / "paths.jsonl"
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "path_class_rows.py")
    subprocess.run([sys.executable, script, os.path.join(spec.out, "tiny-coconut"), "--base", "tiny",
                    "--out", str(out)], check=True, capture_output=True)
    (line,) = map(json.loads, out.read_text().splitlines())
    assert (line["name"], line["method"], line["seed"]) == ("tiny-coconut", "coconut", 0) and "variant" not in line
    for column in ["path_k", "k0", "k2", "final_accuracy"] + [f"path_{c}" for c in PATH_CLASSES]:
        assert line[column] == lines[0][column], column
    # --analyses k_sweep: the table's columns alone (how ProntoQA's lone runs get lines)
    subprocess.run([sys.executable, script, os.path.join(spec.out, "tiny-coconut"), "--base", "tiny",
                    "--out", str(tmp_path / "k.jsonl"), "--analyses", "k_sweep"], check=True, capture_output=True)
    (line,) = map(json.loads, (tmp_path / "k.jsonl").read_text().splitlines())
    assert (line["k0"], line["k2"]) == (lines[0]["k0"], lines[0]["k2"]) and "path_k" not in line


def test_sweeps_sharing_an_out_folder_keep_each_others_lines(tmp_path):
    """Two queues write one results file: each line goes in under the lock, read afresh."""
    from coconut.sweep.results import read_lines, update_line
    path = str(tmp_path / "results.jsonl")
    update_line(path, {"name": "a", "final_accuracy": 0.5})
    update_line(path, {"name": "b", "final_accuracy": 0.7})          # the other queue, started before "a" ended
    update_line(path, {"name": "a", "final_accuracy": 0.6}, order=["b", "a"])
    assert list(read_lines(path).items()) == [("b", {"name": "b", "final_accuracy": 0.7}),
                                              ("a", {"name": "a", "final_accuracy": 0.6})]
    # four writers at once, 25 lines each: none lost
    import multiprocessing
    writers = [multiprocessing.get_context("fork").Process(target=_write_lines, args=(path, w)) for w in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert len(read_lines(path)) == 2 + 100 and not [f for f in os.listdir(tmp_path) if f != "results.jsonl"]


def _write_lines(path, writer):
    from coconut.sweep.results import update_line
    for i in range(25):
        update_line(path, {"name": f"w{writer}-{i}"})


def test_cli_sweep_and_report(swept, tmp_path, capsys):
    spec, lines = swept
    out = tmp_path / "out"
    shutil.copytree(spec.out, out)
    path = _spec_file(tmp_path, json.dumps({**TINY, "out": str(out)}))   # JSON is YAML
    assert main(["sweep", path]) == 0
    printed = capsys.readouterr().out
    assert "2 rows: 2 finished (kept)" in printed and "2 of 2 rows in" in printed
    assert main(["report", str(out / "results.jsonl"), "--by", "method", "--plots", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "| method | seeds | final accuracy % |" in printed and "| Coconut | - |" in printed
    # the path-class table: the final model's answers, then each k of Coconut's sweep
    rows = {cells[0]: cells for cells in (line.strip("| ").split(" | ") for line in printed.splitlines())}
    assert [name in rows for name in ("Coconut", "Coconut, k = 0", "Coconut, k = 2", "CoT", "CoT, k = 0")] == \
        [True, True, True, True, False]
    assert rows["Coconut"][2:] == [f"{100 * lines[0][f'path_{c}']:.1f}" for c in PATH_CLASSES]
    for plot in ("curves", "coconut_probe", "path_classes"):
        assert os.path.exists(tmp_path / "plots" / f"tiny_{plot}.png"), plot


def test_the_splits_analysis_scores_the_row_model_on_another_file(swept, tmp_path):
    """A split that holds the row's own validation questions scores what the row's final
    accuracy says."""
    from coconut.assembly import assemble
    from coconut.checkpoints import list_checkpoints, read_state
    from coconut.data import save_examples
    from coconut.run_config import config_from_dict
    from coconut.sweep.analyses import analyse
    _, lines = swept
    row = lines[0]
    checkpoint = list_checkpoints(row["run_dir"])[-1][2]
    cfg = config_from_dict(read_state(checkpoint)["config"])
    path = tmp_path / "again.json"
    save_examples(path, assemble(cfg, "eval", checkpoint=checkpoint).val_set)
    assert analyse(cfg, checkpoint, ["splits"], {"again": str(path)}) == {"split_again": row["final_accuracy"]}


def test_a_folder_another_run_holds_is_never_moved_aside(swept, tmp_path):
    """A second sweep started while the first trains a row sees the row's folder without
    a results line; it must refuse, naming the folder, instead of moving it away from
    under the live run."""
    from coconut.run_lock import RunFolderBusy, RunLock
    spec, _ = swept
    out = tmp_path / "out"
    shutil.copytree(spec.out, out)
    (out / "results.jsonl").unlink()
    for n in (1, 2, 3):
        shutil.rmtree(out / "tiny-cot" / f"checkpoint_{n}")       # its first epoch not saved yet: a new row
    spec = load_spec({**TINY, "out": str(out)})
    assert [p.action for p in plan(spec)] == ["resume", "new"]
    before = sorted(os.listdir(out))
    with RunLock(str(out / "tiny-cot")):
        with pytest.raises(RunFolderBusy, match=f"{out / 'tiny-cot'} is in use by another coconut run"):
            run_sweep(spec, "local", echo=lambda _: None)
    assert sorted(os.listdir(out)) == before        # nothing moved, the coconut row's folder neither
