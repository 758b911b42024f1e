"""A run's checkpoints: written atomically, listed, found for a resume, and read back.

Save directory `save_path/name/`:
    checkpoint_N/          after N epochs: config.json + model.safetensors (Hugging
                           Face), optimizer.npz, trainer_state.json
    checkpoint_N_stepS/    written on Ctrl-C: S optimizer steps into epoch N
    checkpoint_last/       with save_only_improve, the latest epoch that did not improve
    best.json              epoch and accuracy of the best validation accuracy so far
    metrics.jsonl          one line per epoch (and per step with log_every_steps)
"""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from coconut.run_config import ConfigError, RunConfig

CHECKPOINT = re.compile(r"^checkpoint_(\d+)(?:_step(\d+))?$")
# Keys that may change between a run and its resume without changing the trajectory.
RESUME_MAY_CHANGE = {"num_epochs", "resume", "threads", "save_path", "name", "max_new_tokens", "eval_batch_size",
                     "val_size", "log_every_steps", "only_eval", "debug", "project", "save_only_improve",
                     "load_model_path", "model_id", "train_path", "val_path"}


def save_checkpoint(path: str, model, optimizer, state: dict, eos_id: int) -> str:
    """Write into a temporary directory, then rename it into place: an interrupted write
    leaves the previous checkpoint whole."""
    parent, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(parent, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, eos_token_id=eos_id)
    np.savez(os.path.join(tmp, "optimizer.npz"), **optimizer.state_dict())
    write_json_atomic(os.path.join(tmp, "trainer_state.json"), state)
    old = None
    if os.path.exists(path):
        old = os.path.join(parent, f".old-{name}-{os.getpid()}")
        os.rename(path, old)
    os.rename(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return path


def write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def list_checkpoints(save_dir: str) -> list[tuple[int, int, str]]:
    """(epoch, step, path) of every checkpoint in save_dir, oldest first."""
    found = []
    if os.path.isdir(save_dir):
        for entry in os.listdir(save_dir):
            path = os.path.join(save_dir, entry)
            if CHECKPOINT.match(entry) or entry == "checkpoint_last":
                try:
                    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
                        s = json.load(f)
                    found.append((s["epoch"], s["step_in_epoch"], path))
                except (OSError, ValueError, KeyError):
                    continue   # not a complete checkpoint
    return sorted(found)


def find_checkpoint(cfg: RunConfig, resume) -> str | None:
    """The checkpoint a run continues from: "latest", checkpoint_N for resume = N > 0
    (None when it does not exist and load_model_path gives the weights, as the
    reference's resume does), None for a fresh run."""
    found = list_checkpoints(cfg.save_dir)
    if resume == "latest":
        if not found:
            raise ConfigError(f"{cfg.source}: --resume: no checkpoint in {cfg.save_dir}")
        return found[-1][2]
    if not resume:
        return None
    path = os.path.join(cfg.save_dir, f"checkpoint_{resume}")
    if os.path.isfile(os.path.join(path, "trainer_state.json")):
        return path
    if cfg.load_model_path:
        return None
    have = ", ".join(os.path.basename(p) for _, _, p in found) or "none"
    raise ConfigError(f"{cfg.source}: resume: {resume}: {path} does not exist (checkpoints there: {have}); "
                      "set load_model_path to start epoch N from other weights")


def read_state(checkpoint: str, cfg: RunConfig | None = None) -> dict:
    """A checkpoint's trainer_state.json. With `cfg`, the run about to resume from it:
    refused when a setting that shapes the trajectory changed."""
    path = os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{checkpoint}: no trainer_state.json (not a coconut checkpoint)")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({e})") from None
    saved, now = state.get("config", {}), cfg.to_dict() if cfg else {}
    changed = sorted(k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k])
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed[:4])
        raise ConfigError(f"{cfg.source}: cannot resume from {checkpoint}: the config changed ({detail}); an exact "
                          "resume needs the same settings")
    return state


def refuse_to_overwrite(save_dir: str) -> None:
    found = list_checkpoints(save_dir)
    if found:
        raise ConfigError(f"{save_dir} already holds checkpoints ({os.path.basename(found[-1][2])} is the latest); "
                          "continue it with --resume, or choose another name or save_path")


def best_checkpoint(save_dir: str) -> str | None:
    """The checkpoint best.json names (the best validation accuracy so far), if any."""
    path = os.path.join(save_dir, "best.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return os.path.join(save_dir, json.load(f)["checkpoint"])
