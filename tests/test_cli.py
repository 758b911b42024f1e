"""`python -m coconut ...`: data generation, and bad input as one line with exit status 2."""
import json
import os
import subprocess
import sys

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
    assert [row.split()[0] for row in table[1:]] == [str(k) for k in range(7)]
    assert main(["train", str(cfg), "--resume", "--set", "num_epochs=3"]) == 0
    assert os.path.isdir(tmp_path / "tiny" / "checkpoint_3")
