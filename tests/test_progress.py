"""Progress lines when the output is no terminal (a log, CI, nohup, a notebook)."""
import re

import numpy as np

from coconut import progress
from coconut.progress import Progress, clock
from coconut.run_config import config_from_dict
from coconut.train import Trainer

TRAINING = re.compile(r"^epoch (\d)/2 \(stage (\d)\) training: step (\d)/2, loss (\d+\.\d{4}), \d+ tokens/s, "
                      r"elapsed \d+:\d\d, ETA (\d+:\d\d|\?)$")
VALIDATION = re.compile(r"^epoch (\d)/2 validation loss: batch (\d)/2, loss \d+\.\d{4}, \d+ tokens/s, "
                        r"elapsed \d+:\d\d, ETA (\d+:\d\d|\?)$")
GENERATION = re.compile(r"^epoch (\d)/2 generation: example (\d)/4, \d+ tokens/s, elapsed \d+:\d\d, "
                        r"ETA (\d+:\d\d|\?)$")


def tiny(tmp_path):
    return config_from_dict({"generate": {"dataset": "prosqa", "n": 16, "val_n": 4}, "tokenization": "prosqa_symbolic",
                             "init": "scratch", "n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 256,
                             "coconut": True, "epochs_per_stage": 1, "max_latent_stage": 1, "num_epochs": 2,
                             "batch_size_training": 8, "eval_batch_size": 2, "max_new_tokens": 4, "threads": 1,
                             "save_path": str(tmp_path), "name": "tiny", "debug": True})


def test_lines_during_training_validation_and_generation(tmp_path, capsys):
    result = Trainer(tiny(tmp_path), progress_every=0).run()
    lines = capsys.readouterr().out.splitlines()
    training = [TRAINING.match(l).groups() for l in lines if TRAINING.match(l)]
    assert [(e, s, k) for e, s, k, _, _ in training] == [("1", "0", "1"), ("1", "0", "2"),
                                                         ("2", "1", "1"), ("2", "1", "2")]
    # one micro-batch per step: each line's loss is its step's, and their mean the epoch's
    for epoch in (1, 2):
        losses = [float(loss) for e, _, _, loss, _ in training if e == str(epoch)]
        assert abs(np.mean(losses) - result.history[epoch - 1]["train_loss"]) <= 1e-4
    assert [l for l in training if l[2] == "2"][0][4] == "0:00"     # nothing left: ETA 0
    validation = [VALIDATION.match(l).groups()[:2] for l in lines if VALIDATION.match(l)]
    assert validation == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    generation = [GENERATION.match(l).groups()[:2] for l in lines if GENERATION.match(l)]
    assert generation == [("1", "2"), ("1", "4"), ("2", "2"), ("2", "4")]
    # every line is a progress line or an epoch's summary line
    assert len(lines) == len(training) + len(validation) + len(generation) + 2


def test_a_terminal_gets_the_bars_and_no_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    Trainer(tiny(tmp_path), progress_every=0).run()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(l.startswith("epoch ") and "val accuracy" in l for l in out)


def test_eta_from_the_rate_since_the_start():
    p = Progress("epoch 1/1 training", total=10, every=1e9, initial=2, enabled=False)
    p.start = 100.0
    p.advance(6, loss=0.5, tokens=800)
    p.advance(6, loss=0.25)
    # 4 steps in 8 s: 0.5 step/s, 4 left -> 8 s; 800 tokens / 8 s
    assert p.line(108.0) == "epoch 1/1 training: step 6/10, loss 0.3750, 100 tokens/s, elapsed 0:08, ETA 0:08"
    assert clock(3725) == "1:02:05" and clock(59.6) == "1:00" and clock(float("inf")) == "?"
