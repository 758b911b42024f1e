"""A run's checkpoints: written atomically, listed, found for a resume, and read back.

Save directory `save_path/name/`:
    checkpoint_N/          after N epochs: config.json + model.safetensors (Hugging
                           Face), optimizer.npz, trainer_state.json
    checkpoint_N_stepS/    written on Ctrl-C: S optimizer steps into epoch N
    checkpoint_last/       with save_only_improve, the latest epoch that did not improve
    best.json              epoch and accuracy of the best validation accuracy so far
    metrics.jsonl          one line per epoch (and per step with log_every_steps)
    tensorboard/, wandb/   the same lines for TensorBoard and W&B, with log_to (coconut.metric_sinks);
    wandb_run_id           the W&B run a resume continues
    run.lock               the process training into the folder (coconut.run_lock)

Each checkpoint folder also holds SHA256SUMS (the `sha256sum` format, written last):
reading a checkpoint's state checks every file against it, so a file damaged on disk or
in a copy is named instead of resuming from bad numbers. A checkpoint is written as
`.tmp-checkpoint_N-PID/` and renamed into place; `clean_stale_temporaries` removes what
a killed process left. A failed write (disk full, read-only) raises SaveError naming the
file and `save_path`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import zipfile
import zlib
from contextlib import contextmanager

import numpy as np

from coconut.run_config import ConfigError, RunConfig

CHECKPOINT = re.compile(r"^checkpoint_(\d+)(?:_step(\d+))?$")
CHECKSUMS = "SHA256SUMS"
# what save_checkpoint and write_text_atomic leave behind when killed: `.tmp-NAME-PID`,
# `.old-NAME-PID` (folders), `FILE.tmp-PID`
TEMPORARY = re.compile(r"^\.(tmp|old)-(checkpoint_\w+)-(\d+)$|^.+\.tmp-(\d+)$")
# Keys that may change between a run and its resume without changing the trajectory.
RESUME_MAY_CHANGE = {"num_epochs", "resume", "threads", "save_path", "name", "max_new_tokens", "eval_batch_size",
                     "val_size", "log_every_steps", "only_eval", "debug", "project", "save_only_improve",
                     "load_model_path", "model_id", "train_path", "val_path", "log_to", "wandb_mode", "data_ahead"}


class CheckpointError(ConfigError):
    """A checkpoint that cannot be trusted (a file damaged, truncated or missing); the
    message names the file."""


class SaveError(OSError):
    """Writing under save_path failed (disk full, read-only, no permission); the message
    names the file and the key, errno stays that of the cause."""

    def __init__(self, path: str, cause: OSError):
        super().__init__(cause.errno, cause.strerror, path)
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "the disk is full: free space there or set save_path to another disk"
        elif cause.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = "it is not writable: set save_path to a folder you can write to"
        else:
            hint = "check save_path"
        inner = f", at {cause.filename}" if cause.filename and os.fspath(cause.filename) != path else ""
        self.message = f"cannot write {path} ({cause.strerror or cause}{inner}); {hint}"

    def __str__(self) -> str:
        return self.message


@contextmanager
def writing(path: str):
    """An OSError raised inside becomes a SaveError naming `path`, not a bare [Errno 28]."""
    try:
        yield
    except SaveError:
        raise
    except OSError as e:
        raise SaveError(path, e) from e


def save_checkpoint(path: str, model, optimizer, state: dict, eos_id: int) -> str:
    """Write into a temporary directory, checksums last, then rename it into place: an
    interrupted write leaves the previous checkpoint whole, a failed one (disk full)
    leaves nothing behind."""
    parent, name = os.path.split(os.path.abspath(path))
    tmp, old = os.path.join(parent, f".tmp-{name}-{os.getpid()}"), None
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(path):
            model.save_pretrained(tmp, eos_token_id=eos_id)
            np.savez(os.path.join(tmp, "optimizer.npz"), **optimizer.state_dict())
            write_json_atomic(os.path.join(tmp, "trainer_state.json"), state)
            write_checksums(tmp)
            if os.path.exists(path):
                old = os.path.join(parent, f".old-{name}-{os.getpid()}")
                os.rename(path, old)
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old and not os.path.exists(path):
            os.rename(old, path)   # the previous checkpoint back in place
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return path


def write_json_atomic(path: str, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def write_text_atomic(path: str, text: str) -> None:
    """Readers see the old file or the new one, never a part; a failed write removes its
    temporary and raises SaveError."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with writing(path):
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def append_jsonl(path: str, record: dict) -> None:
    """One line appended to a log such as metrics.jsonl; a failed write raises SaveError."""
    with writing(path):
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------- checksums


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: str) -> None:
    """SHA256SUMS of every file in the folder (`sha256sum -c SHA256SUMS` checks it there)."""
    names = sorted(n for n in os.listdir(folder) if n != CHECKSUMS and os.path.isfile(os.path.join(folder, n)))
    write_text_atomic(os.path.join(folder, CHECKSUMS),
                      "".join(f"{file_sha256(os.path.join(folder, n))}  {n}\n" for n in names))


def read_checksums(folder: str) -> dict[str, str] | None:
    """{file name: sha256} from the folder's SHA256SUMS; None when it has none (a
    checkpoint written before checksums)."""
    path = os.path.join(folder, CHECKSUMS)
    if not os.path.isfile(path):
        return None
    sums = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    for i, line in enumerate(lines, 1):
        digest, _, name = line.partition("  ")
        name = name.lstrip("*")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name or os.path.basename(name) != name:
            raise CheckpointError(f"{path}: line {i} is not '<sha256>  <file name>': {line[:80]!r}")
        sums[name] = digest
    return sums


def verify_checkpoint(checkpoint: str) -> bool:
    """Check every file SHA256SUMS lists against its digest: raises CheckpointError naming
    the first one missing or changed. True when checked, False for a checkpoint written
    before checksums (nothing to check; it loads as before)."""
    sums = read_checksums(checkpoint)
    if sums is None:
        return False
    for name, digest in sums.items():
        path = os.path.join(checkpoint, name)
        try:
            actual = file_sha256(path)
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read a file of the checkpoint ({e.strerror})") from None
        if actual != digest:
            raise CheckpointError(f"{path}: damaged: its sha256 differs from the one recorded in {CHECKSUMS} when "
                                  f"the checkpoint was written (a bad disk or an incomplete copy?); copy it again, "
                                  "or resume from an earlier checkpoint")
    return True


def load_optimizer_state(checkpoint: str) -> dict:
    """The AdamW state (arrays by name) of a checkpoint; a truncated or damaged
    optimizer.npz raises CheckpointError naming it, not BadZipFile."""
    path = os.path.join(checkpoint, "optimizer.npz")
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise CheckpointError(f"{path}: unreadable optimizer state ({why}); the checkpoint is damaged: resume from "
                              "an earlier one") from None


def list_checkpoints(save_dir: str) -> list[tuple[int, int, str]]:
    """(epoch, step, path) of every checkpoint in save_dir, oldest first."""
    return _scan(save_dir)[0]


def _scan(save_dir: str) -> tuple[list, list]:
    """The checkpoints, and the damaged ones: (epoch and step from the name, None for
    checkpoint_last; trainer_state.json's path; why). A checkpoint folder appears by one
    rename once whole, so one without a readable state is damaged, not in progress."""
    found, damaged = [], []
    if os.path.isdir(save_dir):
        for entry in os.listdir(save_dir):
            path = os.path.join(save_dir, entry)
            match = CHECKPOINT.match(entry)
            if not (match or entry == "checkpoint_last") or not os.path.isdir(path):
                continue
            state = os.path.join(path, "trainer_state.json")
            try:
                with open(state, encoding="utf-8") as f:
                    s = json.load(f)
                found.append((s["epoch"], s["step_in_epoch"], path))
            except (OSError, ValueError, KeyError, TypeError) as e:
                why = e.strerror if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
                place = (int(match.group(1)), int(match.group(2) or 0)) if match else None
                damaged.append((place, state, why))
    return sorted(found), damaged


def find_checkpoint(cfg: RunConfig, resume) -> str | None:
    """The checkpoint a run continues from: "latest", checkpoint_N for resume = N > 0
    (None when it does not exist and load_model_path gives the weights, as the
    reference's resume does), None for a fresh run. A damaged checkpoint that would be
    the one picked raises CheckpointError: never a silent step back to an older one."""
    found, damaged = _scan(cfg.save_dir)
    if resume == "latest":
        latest = found[-1][:2] if found else (-1, -1)
        for place, state, why in damaged:
            if place is None or place > latest:
                raise CheckpointError(f"{cfg.source}: --resume: {state}: unreadable ({why}); the latest checkpoint is "
                                      "damaged: repair or remove it to resume from the one before")
        if not found:
            raise ConfigError(f"{cfg.source}: --resume: no checkpoint in {cfg.save_dir}")
        return found[-1][2]
    if not resume:
        return None
    path = os.path.join(cfg.save_dir, f"checkpoint_{resume}")
    if os.path.isfile(os.path.join(path, "trainer_state.json")):
        return path
    if os.path.isdir(path):
        raise CheckpointError(f"{cfg.source}: resume: {resume}: {path} has no trainer_state.json (a damaged "
                              "checkpoint)")
    if cfg.load_model_path:
        return None
    have = ", ".join(os.path.basename(p) for _, _, p in found) or "none"
    raise ConfigError(f"{cfg.source}: resume: {resume}: {path} does not exist (checkpoints there: {have}); "
                      "set load_model_path to start epoch N from other weights")


def read_state(checkpoint: str, cfg: RunConfig | None = None) -> dict:
    """A checkpoint's trainer_state.json, after every file of the checkpoint is checked
    against its SHA256SUMS (verify_checkpoint). With `cfg`, the run about to resume from
    it: refused when a setting that shapes the trajectory changed."""
    path = os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{checkpoint}: no trainer_state.json (not a coconut checkpoint)")
    verify_checkpoint(checkpoint)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a JSON {type(state).__name__}, not a checkpoint's state")
    saved, now = state.get("config", {}), cfg.to_dict() if cfg else {}
    changed = sorted(k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k])
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed[:4])
        raise ConfigError(f"{cfg.source}: cannot resume from {checkpoint}: the config changed ({detail}); an exact "
                          "resume needs the same settings")
    return state


def refuse_to_overwrite(save_dir: str) -> None:
    found, damaged = _scan(save_dir)
    if found or damaged:
        latest = os.path.basename(found[-1][2] if found else os.path.dirname(damaged[0][1]))
        raise ConfigError(f"{save_dir} already holds checkpoints ({latest} is the latest); "
                          "continue it with --resume, or choose another name or save_path")


def clean_stale_temporaries(save_dir: str) -> list[str]:
    """Remove what killed runs left in save_dir (`.tmp-checkpoint_N-PID/`, `best.json.tmp-PID`,
    ...); a previous checkpoint moved aside (`.old-NAME-PID/`) whose replacement never
    arrived is put back as NAME. Call it holding the run's lock (coconut.run_lock): every
    other process's temporary is then stale. Returns the paths removed or restored."""
    done = []
    if not os.path.isdir(save_dir):
        return done
    for entry in sorted(os.listdir(save_dir)):
        match = TEMPORARY.match(entry)
        if not match or int(match.group(3) or match.group(4)) == os.getpid():
            continue
        path = os.path.join(save_dir, entry)
        with writing(path):
            if match.group(1) == "old" and not os.path.exists(os.path.join(save_dir, match.group(2))):
                os.rename(path, os.path.join(save_dir, match.group(2)))
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        done.append(path)
    return done


def best_checkpoint(save_dir: str) -> str | None:
    """The checkpoint best.json names (the best validation accuracy so far), if any."""
    path = os.path.join(save_dir, "best.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return os.path.join(save_dir, json.load(f)["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e}); `coconut eval --checkpoint` "
                              "names one instead") from None
