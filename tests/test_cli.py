"""`python -m coconut ...`: data generation, and bad input as one line with exit status 2."""
import json
import os
import random
import subprocess
import sys

import pytest

import coconut
from coconut.cli import main
from coconut.data import generate_prosqa, load_examples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(coconut.__file__)))


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "coconut", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_generate_data_writes_the_official_format(tmp_path):
    out = tmp_path / "prosqa.json"
    p = run("generate-data", "prosqa", "--n", "5", "--seed", "3", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert f"wrote 5 prosqa examples to {out}" in p.stdout
    examples = load_examples(out)
    assert examples == generate_prosqa(5, 3)
    assert set(json.loads(out.read_text())[0]) >= {"question", "steps", "answer", "edges", "root", "target"}


def test_generate_data_compare_prints_both_columns(tmp_path, capsys):
    official = tmp_path / "official.json"
    assert main(["generate-data", "prosqa", "--n", "6", "--seed", "1", "--out", str(official)]) == 0
    assert main(["generate-data", "prosqa", "--n", "4", "--seed", "2", "--out", str(tmp_path / "g.json"),
                 "--compare", str(official)]) == 0
    table = capsys.readouterr().out
    assert "generated" in table and "official" in table
    row = next(line for line in table.splitlines() if line.startswith("examples"))
    assert row.split()[1:] == ["4", "6"]


def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate: {n: 10}\ninit: scratch\ntokenization: prosqa_symbolic\nnum_epoch: 3\n")
    p = run("train", str(bad))
    assert p.returncode == 2
    assert p.stderr.strip() == (f"coconut: error: {bad}: line 4: key 'num_epoch': unknown key "
                                "(did you mean 'num_epochs'?)")
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_missing_data_and_bad_resume_exit_2(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("init: scratch\ntokenization: prosqa_symbolic\ntrain_path: nowhere/train.json\n"
                   "val_path: nowhere/valid.json\n")
    assert main(["train", str(cfg), "--set", f"save_path={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coconut: error:") and "train_path" in err and "does not exist" in err
    assert main(["train", str(cfg), "--resume", "x"]) == 2
    assert "--resume: expected an epoch number, got 'x'" in capsys.readouterr().err


def test_train_then_eval_and_k_sweep(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("generate: {dataset: prosqa, n: 16, val_n: 4}\ntokenization: prosqa_symbolic\ninit: scratch\n"
                   "n_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: 256\ncoconut: true\nepochs_per_stage: 1\n"
                   "max_latent_stage: 1\nnum_epochs: 2\nbatch_size_training: 8\nmax_new_tokens: 4\nthreads: 1\n"
                   f"save_path: {tmp_path}\nname: tiny\n")
    assert main(["train", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "best validation accuracy" in out and os.path.isdir(tmp_path / "tiny" / "checkpoint_2")
    records = tmp_path / "records.jsonl"
    assert main(["eval", str(cfg), "--records", str(records)]) == 0
    assert "accuracy" in capsys.readouterr().out
    lines = [json.loads(l) for l in records.read_text().splitlines()]
    assert len(lines) == 4 and all(l["n_tokens"] <= 4 for l in lines)
    assert main(["eval", str(cfg), "--k-sweep", "--checkpoint", str(tmp_path / "tiny" / "checkpoint_1")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in table[1:]] == ["0", "1"]        # up to the method's one thought
    ckpt = str(tmp_path / "tiny" / "checkpoint_2")
    assert main(["eval", str(cfg), "--probe", "--checkpoint", ckpt]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["1"])
    on_path, rest = float(row.split()[4]), float(row.split()[6])     # the next layer, distance 1
    from coconut.analysis.latent_probe import probe_dataset
    from coconut.build import load_data, saved_tokenization
    from coconut.run_config import load_config
    from coconut.tokenizer.symbolic import ProsQASymbolic
    run_cfg = load_config(str(cfg), [])
    run_cfg.only_eval = True
    val = load_data(run_cfg)[1]
    tok = ProsQASymbolic(max_nodes=saved_tokenization(ckpt)["max_nodes"])
    want = probe_dataset(coconut.GPT2.from_pretrained(ckpt).eval(), tok, val, 1)[0]
    assert (on_path, rest) == (round(want["optimal_mean"], 3), round(want["rest_mean"], 3))
    assert main(["train", str(cfg), "--resume", "--set", "num_epochs=3"]) == 0
    assert os.path.isdir(tmp_path / "tiny" / "checkpoint_3")


def test_version_from_pyproject(capsys):
    from coconut.version import source_tree_version
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "pyproject.toml"), encoding="utf-8") as f:
        declared = next(line.split('"')[1] for line in f if line.startswith("version = "))
    assert coconut.__version__ == source_tree_version(repo) == declared
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"coconut {declared}\n"


def test_version_outside_a_source_tree(tmp_path, monkeypatch):
    from importlib import metadata

    from coconut import version
    assert version.source_tree_version(str(tmp_path)) is None          # no pyproject.toml
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert version.source_tree_version(str(tmp_path)) is None          # another project's
    monkeypatch.setattr(version, "source_tree_version", lambda: None)
    monkeypatch.setattr(metadata, "version", lambda name: {"coconut": "1.2.3"}[name])
    assert version.package_version() == "1.2.3"


def test_every_argument_has_help():
    import argparse

    from coconut.cli import _parser

    def walk(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{where} {name}: no help text"
            if isinstance(action, argparse._SubParsersAction):
                described = {a.dest: a.help for a in action._choices_actions}
                for command, sub in action.choices.items():
                    assert described.get(command, "").strip(), f"{where} {command}: no help text"
                    yield command
                    yield from walk(sub, f"{where} {command}")

    assert sorted(walk(_parser(), "coconut")) == ["eval", "generate-data", "report", "sweep", "train"]


def test_eval_adaptive_against_the_stop_classifier(tmp_path, capsys):
    """The table's rows are coconut.evaluate and coconut.stop_classifier run by hand on
    the same checkpoint, training and validation data."""
    import numpy as np

    from coconut.evaluate import evaluate
    from coconut.run_config import load_config
    from coconut.stop_classifier import StopClassifier
    from coconut.build import build_method, build_model, build_tokenization, load_data

    cfg_path = tmp_path / "tiny.yaml"
    # up to 6 thoughts: ProsQA's 3 to 6 steps give examples different counts to learn
    cfg_path.write_text("generate: {dataset: prosqa, n: 24, val_n: 8}\ntokenization: prosqa_symbolic\n"
                        "init: scratch\nn_layer: 1\nn_head: 2\nn_embd: 32\nn_positions: 256\ncoconut: true\n"
                        "epochs_per_stage: 1\nmax_latent_stage: 6\nnum_epochs: 7\nlr: 0.01\nbatch_size_training: 8\n"
                        f"max_new_tokens: 16\nthreads: 1\nsave_path: {tmp_path}\nname: tiny\n")
    assert main(["train", str(cfg_path), "--no-summary"]) == 0
    checkpoint = str(tmp_path / "tiny" / "checkpoint_7")
    capsys.readouterr()
    assert main(["eval", str(cfg_path), "--adaptive", "--fit-examples", "20", "--checkpoint", checkpoint]) == 0
    out = capsys.readouterr().out.splitlines()

    cfg = load_config(str(cfg_path))
    method = build_method(cfg)
    train, val, _ = load_data(cfg)
    with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
        tok = build_tokenization(cfg, method, val, json.load(f)["tokenization"])
    model = build_model(cfg, tok, checkpoint)
    fixed = [evaluate(model, tok, k, val, 16) for k in range(7)]
    assert [row.split() for row in out[1:8]] == [[str(k), f"{r.accuracy:.4f}", f"{r.mean_new_tokens:.2f}"]
                                                 for k, r in enumerate(fixed)]
    clf = StopClassifier(seed=0).fit(model, tok, train[:20], 6, method=method)
    ks = clf.predict_k(model, tok, val)
    chosen = {id(ex): int(k) for ex, k in zip(val, ks)}
    results = [evaluate(model, tok, chosen[id(ex)], [ex], 16).records[0] for ex in val]
    accuracy = np.mean([r.correct for r in results])
    new_tokens = np.mean([r.n_tokens for r in results])
    assert out[8].split() == ["adaptive", f"{accuracy:.4f}", f"{new_tokens:.2f}", "mean", "thoughts",
                              f"{np.mean(ks):.2f}"]
    assert 1 < np.mean(ks) < 6        # the classifier does choose, not always the same count
    curriculum = [min(len(ex.steps), 6) for ex in val]
    assert out[9] == (f"stop classifier fitted on 20 training examples; it chose the curriculum's number of "
                      f"thoughts for {np.mean(np.maximum(curriculum, 1) == ks):.1%} of the 8 validation examples")


def test_eval_adaptive_needs_continuous_thoughts(tmp_path, capsys):
    cfg = tmp_path / "cot.yaml"
    cfg.write_text("generate: {dataset: prosqa, n: 4, val_n: 2}\ntokenization: prosqa_symbolic\ninit: scratch\n"
                   "n_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: 256\ncot: true\nthreads: 1\nmax_new_tokens: 32\n")
    assert main(["eval", str(cfg), "--adaptive", "--untrained"]) == 2
    assert capsys.readouterr().err.strip() == (f"coconut: error: {cfg}: --adaptive: the stop classifier reads "
                                               "continuous thoughts; method cot has none")


MY_METHOD = '''
from coconut.curriculum import Coconut
from coconut.curriculum.method import random_below


class RandomStage(Coconut):
    """Every example at a stage drawn uniformly from 0..len(steps), every epoch."""
    def example_stage(self, example, epoch, rng=None):
        return random_below(rng, len(example.steps) + 1)
'''


def test_a_method_of_ones_own_trains_and_evaluates_without_registration(tmp_path, capsys):
    """A Coconut subclass in a user's file: `--method-class FILE.py:CLASS` on the command
    line, `Trainer(cfg, method=...)` in Python; METHODS is left untouched."""
    from coconut.curriculum import METHODS
    from coconut.run_config import load_config
    from coconut.train import Trainer
    (tmp_path / "my_methods.py").write_text(MY_METHOD)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("generate: {dataset: prosqa, n: 16, val_n: 4}\ntokenization: prosqa_symbolic\ninit: scratch\n"
                   "n_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: 256\nmethod: coconut\nmax_latent_stage: 2\n"
                   "num_epochs: 2\nbatch_size_training: 8\nmax_new_tokens: 4\nthreads: 1\n"
                   f"save_path: {tmp_path}\nname: mine\n")
    spec = f"{tmp_path / 'my_methods.py'}:RandomStage"
    assert main(["train", str(cfg), "--method-class", spec, "--no-summary"]) == 0
    with open(tmp_path / "mine" / "checkpoint_2" / "trainer_state.json") as f:
        assert json.load(f)["method"] == "coconut"      # the subclass keeps Coconut's name: nothing registered
    assert "RandomStage" not in {c.__name__ for c in METHODS.values()}
    assert main(["eval", str(cfg), "--method-class", spec]) == 0
    assert "accuracy" in capsys.readouterr().out

    import importlib.util
    loader = importlib.util.spec_from_file_location("my_methods", tmp_path / "my_methods.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    trainer = Trainer(load_config(str(cfg), ["name=object", "debug=true"]), method=module.RandomStage(max_latent_stage=2))
    assert type(trainer.method).__name__ == "RandomStage"
    stages = {trainer.method.example_stage(ex, 0, random.Random(i)) for i, ex in enumerate(trainer.train_set * 4)}
    assert {0, 1, 2, 3} <= stages <= set(range(7))         # drawn up to each example's steps, not epoch 0's stage 0
    for bad, why in ((f"{tmp_path / 'nope.py'}:X", "no file"), (f"{tmp_path / 'my_methods.py'}:Nope", "no Method subclass"),
                     ("RandomStage", "expected FILE.py:CLASS")):
        assert main(["train", str(cfg), "--method-class", bad]) == 2
        assert why in capsys.readouterr().err
