"""Mistakes a new user makes with whole runs: each one is refused or stopped in one line
naming what went wrong, never passed over in silence (eval without a checkpoint, two
runs in one folder, a diverging run, leftovers of a killed save, a method file that does
not load)."""
import os

import pytest
import yaml

from coconut.cli import main
from coconut.run_lock import RunLock
from coconut.train import Trainer, TrainingDiverged
from test_train import BASE, config

TINY = {**BASE, "num_epochs": 1, "generate": {"dataset": "prosqa", "n": 16, "val_n": 4, "seed": 0}}


def write_config(tmp_path, **kw):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, "save_path": str(tmp_path / "out"), "name": "run", **kw}))
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_eval_without_a_checkpoint_is_refused_unless_asked_for_untrained_weights(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["eval", cfg]) == 2
    line = one_error_line(capsys)
    assert "no checkpoint to evaluate" in line and str(tmp_path / "out" / "run") in line and "--untrained" in line
    assert main(["eval", cfg, "--untrained"]) == 0
    assert "(the config's untrained weights)" in capsys.readouterr().out
    assert main(["train", cfg, "--no-summary"]) == 0
    capsys.readouterr()
    assert main(["eval", cfg]) == 0
    assert str(tmp_path / "out" / "run" / "checkpoint_1") in capsys.readouterr().out


def test_a_second_run_in_a_held_run_folder_is_refused_naming_the_holder(tmp_path):
    cfg = config(tmp_path)
    lock = RunLock(cfg.save_dir).acquire()   # another open of the lock file: flock treats it as another run
    try:
        with pytest.raises(ValueError, match=rf"pid {os.getpid()}"):
            Trainer(cfg).run()
        assert not os.path.exists(os.path.join(cfg.save_dir, "metrics.jsonl"))   # it wrote nothing
    finally:
        lock.release()
    Trainer(cfg).run()   # free again


def test_leftovers_of_a_killed_checkpoint_write_are_removed_at_the_next_start(tmp_path):
    cfg = config(tmp_path, num_epochs=1)
    stale = os.path.join(cfg.save_dir, ".tmp-checkpoint_4-99999")
    os.makedirs(stale)
    open(os.path.join(stale, "model.safetensors"), "wb").close()
    Trainer(cfg).run()
    assert not os.path.exists(stale) and os.path.isdir(os.path.join(cfg.save_dir, "checkpoint_1"))


def test_a_diverging_run_stops_in_one_line_naming_the_epoch_step_and_last_checkpoint(tmp_path, capsys):
    cfg = config(tmp_path, num_epochs=2, lr=1e30, dropout=0.0)
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1, step \d+ of 5 \(.*overflow"):
        Trainer(cfg).run()
    path = write_config(tmp_path, lr=1e30, num_epochs=2)
    assert main(["train", path]) == 1
    line = one_error_line(capsys)
    assert line.startswith("coconut: error: training diverged at epoch 1") and "no checkpoint was written" in line


def test_a_method_file_that_does_not_load_is_one_line(tmp_path, capsys):
    broken = tmp_path / "my_methods.py"
    broken.write_text("from coconut.curriculum import Coconut\nclass Mine(Coconut)\n    pass\n")
    cfg = write_config(tmp_path)
    assert main(["train", cfg, "--method-class", f"{broken}:Mine"]) == 2
    line = one_error_line(capsys)
    assert f"{broken}, line 2" in line and "expected ':'" in line
    broken.write_text("import numpy\nraise RuntimeError('half written')\n")
    assert main(["train", cfg, "--method-class", f"{broken}:Mine"]) == 2
    assert "raised RuntimeError: half written" in one_error_line(capsys)


def test_only_eval_scores_load_model_path_without_training(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["train", cfg, "--no-summary"]) == 0
    capsys.readouterr()
    weights = str(tmp_path / "out" / "run" / "checkpoint_1")
    again = write_config(tmp_path, only_eval=True, load_model_path=weights, name="eval-only")
    assert main(["train", again]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy ") and weights in out
    assert not os.path.exists(tmp_path / "out" / "eval-only")   # nothing trained, nothing written
    with pytest.raises(ValueError, match="only_eval: true asks for an evaluation"):
        Trainer(config(tmp_path, only_eval=True, load_model_path=weights))
