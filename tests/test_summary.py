"""The summary at the end of a run: accuracy, time, tokens and the final model's k-sweep."""
import numpy as np
import pytest

from coconut.analysis.latent_probe import probe_dataset
from coconut.cli import main
from coconut.evaluate import k_sweep
from coconut.run_config import config_from_dict
from coconut.summary import summarize
from coconut.train import Trainer


def tiny(tmp_path, name, **keys):
    raw = {"generate": {"dataset": "prosqa", "n": 16, "val_n": 4}, "tokenization": "prosqa_symbolic",
           "init": "scratch", "n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 256, "coconut": True,
           "epochs_per_stage": 1, "max_latent_stage": 2, "c_thought": 2, "num_epochs": 3, "lr": 1e-2,
           "batch_size_training": 8, "max_new_tokens": 16, "threads": 1, "save_path": str(tmp_path), "name": name}
    return config_from_dict({**raw, **keys})


@pytest.mark.parametrize("method, mode", [(None, "continuous"), ("pause_as_thought", "pause")])
def test_summary_of_a_method_with_thoughts(tmp_path, method, mode):
    trainer = Trainer(tiny(tmp_path, "run", **({"method": method} if method else {})), verbose=False)
    result = trainer.run(summary=True)
    s = result.summary
    assert (s.final_accuracy, s.final_epoch) == (result.history[-1]["val_accuracy"], 3)
    assert (s.best_accuracy, s.best_epoch) == (result.best_accuracy, result.best_epoch)
    assert s.minutes == result.seconds / 60 and s.minutes > 0
    # no uniform_prob: a sequence's length depends on its example and epoch only
    m, tok = trainer.method, trainer.tok
    assert s.tokens_trained == sum(len(m.sequence(tok, ex, e).input_ids) for e in range(3) for ex in trainer.train_set)
    # k = 0 .. max_latent_stage * c_thought, decoded with the method's thought mode
    sweep = k_sweep(result.model, tok, trainer.val_set, ks=range(5), max_new_tokens=16, thoughts=mode)
    assert s.thoughts == mode
    assert s.k_sweep == {k: (r.accuracy, r.mean_new_tokens) for k, r in sweep.items()}
    lines = s.table().splitlines()
    start = next(i for i, line in enumerate(lines) if "thoughts at inference" in line) + 2
    assert [row.split() for row in lines[start:start + 5]] == [[str(k), f"{r.accuracy:.4f}", f"{r.mean_new_tokens:.2f}"]
                                                           for k, r in sweep.items()]
    # the latent probe of the final model, for thoughts fed back only: the reached layer's values
    if mode == "continuous":
        reached = probe_dataset(result.model, tok, trainer.val_set, 4, depth_offset=0)
        np.testing.assert_equal(s.probe, {t + 1: (r["optimal_mean"], r["off_path_mean"], r["rest_mean"])
                                          for t, r in reached.items()})   # nan (no node off the path) equal too
        assert "latent probe of the final model" in lines[start + 5] and len(lines) == start + 5 + 2 + 4
        t1 = lines[start + 7].split()
        assert t1[0] == "1" and t1[1] == f"{s.probe[1][0]:.3f}" and t1[2] == "-"   # the root: no node off the path
    else:
        assert s.probe == {} and len(lines) == start + 5
    assert f"final validation accuracy  {s.final_accuracy:.4f} (epoch 3)" in s.table()
    assert f"tokens trained             {s.tokens_trained:,}" in s.table()


def test_no_sweep_without_thoughts_and_no_summary_unless_asked(tmp_path):
    trainer = Trainer(tiny(tmp_path, "cot", coconut=False, cot=True, num_epochs=1), verbose=False)
    result = trainer.run()
    assert result.summary is None and result.tokens_trained > 0
    s = summarize(trainer, result)
    assert s.k_sweep == {} and s.thoughts == "none" and "thoughts at inference" not in s.table()
    assert s.table().splitlines()[-1].startswith("  tokens trained")


def test_coconut_train_prints_the_summary(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"generate: {{dataset: prosqa, n: 16, val_n: 4}}\ntokenization: prosqa_symbolic\ninit: scratch\n"
                   f"n_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: 256\ncoconut: true\nepochs_per_stage: 1\n"
                   f"max_latent_stage: 1\nnum_epochs: 1\nmax_new_tokens: 4\nthreads: 1\nsave_path: {tmp_path}\n")
    assert main(["train", str(cfg), "--set", "name=a"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("run summary")
    assert [line.split()[0] for line in out[start + 7:start + 9]] == ["0", "1"]
    assert out[-1].startswith("best validation accuracy")
    assert main(["train", str(cfg), "--set", "name=b", "--no-summary"]) == 0
    assert "run summary" not in capsys.readouterr().out
