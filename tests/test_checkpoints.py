"""Hugging Face checkpoints: save_pretrained -> transformers -> from_pretrained round
trips bitwise, vocabulary growth, and refusals of mismatched checkpoints. A run's
checkpoints (coconut.checkpoints): checksums, damaged files named, stale temporaries
cleaned, write errors naming the file and save_path."""
import errno
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
import transformers

import coconut
from coconut.checkpoints import (CHECKSUMS, CheckpointError, SaveError, append_jsonl, best_checkpoint,
                                 clean_stale_temporaries, find_checkpoint, load_optimizer_state, read_state,
                                 refuse_to_overwrite, save_checkpoint, verify_checkpoint, write_json_atomic)
from coconut.run_config import ConfigError, RunConfig
from coconut.safetensors_io import load_safetensors, save_safetensors
from hf_bridge import padded_batch, small_model


def test_round_trip_through_transformers_is_bitwise(tmp_path):
    model = small_model(seed=4)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    model.save_pretrained(str(ours_dir))
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(ours_dir))
    for name, view in model.params.items():
        assert np.array_equal(hf.state_dict()[name].numpy(), view), name
    # transformers computes what we compute from the loaded weights
    ids, mask, pos, _ = padded_batch()
    with torch.no_grad():
        ref = hf.eval()(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        position_ids=torch.from_numpy(pos)).logits.numpy()
    real = mask.astype(bool)
    assert np.abs(model.forward(ids, mask, pos)[real] - ref[real]).max() <= 1e-4
    hf.save_pretrained(str(theirs_dir))
    back = coconut.GPT2.from_pretrained(str(theirs_dir))
    assert back.config == model.config
    assert np.array_equal(back.param_block, model.param_block)


def test_reads_the_original_gpt2_key_names(tmp_path):
    """The released GPT-2 checkpoint names tensors without `transformer.` and carries
    the causal-mask buffers `h.N.attn.bias`."""
    model = small_model(seed=2)
    tensors = {k[len("transformer."):]: v for k, v in model.params.items()}
    for i in range(model.config.n_layer):
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
    os.makedirs(tmp_path / "orig")
    save_safetensors(str(tmp_path / "orig" / "model.safetensors"), tensors)
    model.config.save_hf_file(str(tmp_path / "orig" / "config.json"))
    back = coconut.GPT2.from_pretrained(str(tmp_path / "orig"))
    assert np.array_equal(back.param_block, model.param_block)


def test_vocabulary_growth_copies_a_row(tmp_path):
    model = small_model(seed=1)
    before = model.params["transformer.wte.weight"].copy()
    others = {k: v.copy() for k, v in model.params.items() if k != "transformer.wte.weight"}
    model.add_thought_tokens(bot_id=97, eot_id=98, latent_id=99, copy_from=16)
    wte = model.params["transformer.wte.weight"]
    assert wte.shape == (100, 48) and model.config.vocab_size == 100
    assert np.array_equal(wte[:97], before)
    for row in (97, 98, 99):
        assert np.array_equal(wte[row], before[16])
    for k, v in others.items():
        assert np.array_equal(model.params[k], v)
    assert model.thoughts == coconut.ThoughtSpec("continuous", latent_id=99, bot_id=97, eot_id=98)
    # the grown model still trains: gradients land in the new rows
    ids = np.array([[1, 2, 97, 99, 99, 98, 5, 6]])
    model.zero_grad()
    model.loss_and_grad(ids, ids)
    assert np.abs(model.grads["transformer.wte.weight"][97]).max() > 0


def test_mismatched_checkpoints_are_refused(tmp_path):
    model = small_model()
    model.save_pretrained(str(tmp_path / "m"))
    # a tensor of the wrong shape
    tensors, _ = load_safetensors(str(tmp_path / "m" / "model.safetensors"))
    tensors["transformer.h.0.ln_1.weight"] = np.ones(7, np.float32)
    save_safetensors(str(tmp_path / "m" / "model.safetensors"), tensors)
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.ln_1\.weight.*shape"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    # a missing tensor
    del tensors["transformer.h.0.ln_1.weight"]
    save_safetensors(str(tmp_path / "m" / "model.safetensors"), tensors)
    with pytest.raises(ValueError, match="missing tensor"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    # a config the core does not compute
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["activation_function"] = "relu"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="activation_function"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    (tmp_path / "m" / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="config.json: line 1"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError):
        coconut.GPT2.from_pretrained(str(tmp_path / "nowhere"))


# ----------------------------------------------------------------------------- robustness


def saved(tmp_path, name="checkpoint_1", epoch=1, step=0):
    """A checkpoint as the trainer writes it, of a small model."""
    model = small_model(seed=3)
    state = {"epoch": epoch, "step_in_epoch": step, "global_step": 4, "config": {}}
    return save_checkpoint(str(tmp_path / "run" / name), model, coconut.AdamW(model), state, eos_id=0)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_checkpoints_record_and_check_their_checksums(tmp_path):
    ckpt = saved(tmp_path)
    listed = sorted(line.split("  ")[1] for line in open(os.path.join(ckpt, CHECKSUMS)).read().splitlines())
    assert listed == ["config.json", "model.safetensors", "optimizer.npz", "trainer_state.json"]
    assert verify_checkpoint(ckpt) and read_state(ckpt)["epoch"] == 1
    flip_byte(os.path.join(ckpt, "model.safetensors"), 1000)
    expected = os.path.join(ckpt, "model.safetensors")
    with pytest.raises(CheckpointError, match=re.escape(expected) + ": damaged: its sha256 differs"):
        read_state(ckpt)
    os.remove(expected)
    with pytest.raises(CheckpointError, match=re.escape(expected) + ": cannot read"):
        verify_checkpoint(ckpt)
    with open(os.path.join(ckpt, CHECKSUMS), "a") as f:
        f.write("not a checksum line\n")
    with pytest.raises(CheckpointError, match=f"{CHECKSUMS}: line 5 is not"):
        verify_checkpoint(ckpt)


def test_checkpoints_without_checksums_still_load(tmp_path):
    ckpt = saved(tmp_path)
    os.remove(os.path.join(ckpt, CHECKSUMS))   # written before checksums
    assert verify_checkpoint(ckpt) is False
    assert read_state(ckpt)["global_step"] == 4
    assert set(load_optimizer_state(ckpt)) == {"exp_avg", "exp_avg_sq", "step_count"}


def test_a_truncated_optimizer_state_is_named(tmp_path):
    ckpt = saved(tmp_path)
    npz = os.path.join(ckpt, "optimizer.npz")
    with open(npz, "r+b") as f:
        f.truncate(os.path.getsize(npz) // 2)
    with pytest.raises(CheckpointError, match=re.escape(npz) + ": damaged"):
        read_state(ckpt)
    os.remove(os.path.join(ckpt, CHECKSUMS))
    with pytest.raises(CheckpointError, match=re.escape(npz) + ": unreadable optimizer state"):
        load_optimizer_state(ckpt)
    os.remove(npz)
    with pytest.raises(CheckpointError, match=re.escape(npz) + ": unreadable optimizer state .No such file"):
        load_optimizer_state(ckpt)


def test_a_damaged_latest_state_is_named_not_skipped(tmp_path):
    saved(tmp_path, "checkpoint_1", epoch=1)
    latest = saved(tmp_path, "checkpoint_2", epoch=2)
    cfg = RunConfig(save_path=str(tmp_path), name="run")
    assert find_checkpoint(cfg, "latest") == latest
    state = os.path.join(latest, "trainer_state.json")
    with open(state, "w") as f:
        f.write('{"epoch": 2, "step_in')   # cut short
    with pytest.raises(CheckpointError, match=re.escape(state) + ": unreadable"):
        find_checkpoint(cfg, "latest")
    with pytest.raises(CheckpointError, match=re.escape(state) + ": damaged"):   # resume: 2 reads it
        read_state(find_checkpoint(cfg, 2))
    os.remove(state)
    with pytest.raises(CheckpointError, match=re.escape(latest) + " has no trainer_state.json"):
        find_checkpoint(cfg, 2)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        refuse_to_overwrite(cfg.save_dir)
    shutil.rmtree(os.path.join(str(tmp_path), "run", "checkpoint_1"))
    with pytest.raises(ConfigError, match=r"already holds checkpoints \(checkpoint_2"):   # only a damaged one left
        refuse_to_overwrite(cfg.save_dir)


def test_a_damaged_best_json_is_named(tmp_path):
    run = tmp_path / "run"
    os.makedirs(run)
    assert best_checkpoint(str(run)) is None
    (run / "best.json").write_text('{"epoch": 2, "checkpoint": "checkpoint_2"}')
    assert best_checkpoint(str(run)) == str(run / "checkpoint_2")
    (run / "best.json").write_text('{"epoch": 2, "check')
    with pytest.raises(CheckpointError, match=re.escape(str(run / "best.json")) + ": unreadable"):
        best_checkpoint(str(run))


def test_stale_temporaries_are_cleaned(tmp_path):
    kept = saved(tmp_path, "checkpoint_1")
    run = tmp_path / "run"
    for name in (".tmp-checkpoint_2-999999", ".old-checkpoint_1-999998", ".old-checkpoint_3-999997"):
        os.makedirs(run / name)
        (run / name / "trainer_state.json").write_text('{"epoch": 3, "step_in_epoch": 0}')
    (run / "best.json.tmp-999999").write_text("{")
    mine = run / f".tmp-checkpoint_4-{os.getpid()}"
    os.makedirs(mine)
    done = clean_stale_temporaries(str(run))
    assert sorted(os.path.basename(p) for p in done) == [".old-checkpoint_1-999998", ".old-checkpoint_3-999997",
                                                         ".tmp-checkpoint_2-999999", "best.json.tmp-999999"]
    # a checkpoint moved aside whose replacement never came is put back; a whole one stays
    assert sorted(os.listdir(run)) == [mine.name, "checkpoint_1", "checkpoint_3"]
    assert read_state(kept)["epoch"] == 1
    assert clean_stale_temporaries(str(tmp_path / "nowhere")) == []


def failing_writes(monkeypatch, code):
    """Every open for writing fails as a full disk (ENOSPC) or a read-only one (EROFS) does."""
    real_open = open

    def fake_open(file, mode="r", *args, **kw):
        if any(c in mode for c in "wax+"):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kw)
    monkeypatch.setattr("builtins.open", fake_open)


@pytest.mark.parametrize("code, hint", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "not writable")])
def test_write_errors_name_the_file_and_save_path(tmp_path, monkeypatch, code, hint):
    before = saved(tmp_path, "checkpoint_1")
    model = small_model()
    failing_writes(monkeypatch, code)
    path = str(tmp_path / "run" / "checkpoint_1")
    with pytest.raises(SaveError, match=re.escape(f"cannot write {path} ({os.strerror(code)}, at ")) as e:
        save_checkpoint(path, model, coconut.AdamW(model), {"epoch": 9}, eos_id=0)
    assert e.value.errno == code and hint in str(e.value) and "save_path" in str(e.value)
    assert "[Errno" not in str(e.value)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint_1"]   # no temporary left, the old one whole
    assert read_state(before)["epoch"] == 1
    failing_writes(monkeypatch, code)
    best = str(tmp_path / "run" / "best.json")
    with pytest.raises(SaveError, match=re.escape(f"cannot write {best} (") + ".*save_path"):
        write_json_atomic(best, {"epoch": 1})
    metrics = str(tmp_path / "run" / "metrics.jsonl")
    with pytest.raises(SaveError, match=re.escape(f"cannot write {metrics} (") + ".*save_path"):
        append_jsonl(metrics, {"epoch": 1})


def test_a_failed_rename_puts_the_previous_checkpoint_back(tmp_path, monkeypatch):
    path = saved(tmp_path, "checkpoint_1")
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in os.path.basename(src):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_rename(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    model = small_model()
    with pytest.raises(SaveError, match=re.escape(path)):
        save_checkpoint(path, model, coconut.AdamW(model), {"epoch": 9, "step_in_epoch": 0}, eos_id=0)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint_1"] and read_state(path)["epoch"] == 1
