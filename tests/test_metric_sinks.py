"""The metrics sinks of `log_to`: TensorBoard event files (written by coconut.tfevents,
read back by TensorBoard's own EventAccumulator) and an offline W&B run (read back by
`wandb leet inspect --json`, wandb's reader of its .wandb transaction log) hold the
numbers and steps of metrics.jsonl, a resumed run included; a config asking for an
unknown sink, or for wandb where it is not installed, is refused naming `log_to`."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from coconut import tfevents
from coconut.metric_sinks import MetricLog
from coconut.run_config import ConfigError
from coconut.train import Trainer, train
from test_train import config, metrics


def expected_scalars(lines) -> dict:
    """{tag: [(step, value)]} as the sinks should log metrics.jsonl: an epoch line at its
    global_step (its `seconds` as seconds/PHASE), a per-step line at its step as step/KEY."""
    out = {}
    for line in lines:
        if "global_step" in line:
            step, prefix = line["global_step"], ""
        elif "step" in line:
            step, prefix = line["step"], "step/"
        else:
            assert line["event"] == "resume"
            continue
        for key, value in line.items():
            items = value.items() if isinstance(value, dict) else [("", value)]
            for part, x in items:
                if key not in ("global_step", "step") and isinstance(x, (int, float)):
                    tag = prefix + key + (f"/{part}" if part else "")
                    out.setdefault(tag, []).append((step, float(x)))
    return out


def train_and_resume(tmp_path, **kw):
    """3 epochs, then a resume to a 4th: the lines of metrics.jsonl."""
    result = train(config(tmp_path, **kw))
    Trainer(config(tmp_path, num_epochs=4, **kw), resume="latest", verbose=False).run()
    return result.save_dir, metrics(result.save_dir)


# ----------------------------------------------------------------------------- TensorBoard


def test_crc32c_and_protobuf_encoding_match_known_vectors():
    assert tfevents.crc32c(b"123456789") == 0xE3069283
    assert tfevents.crc32c(b"") == 0
    assert tfevents.crc32c(bytes(32)) == 0x8A9136AA          # RFC 3720, B.4
    assert tfevents.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert tfevents.crc32c(bytes(range(32))) == 0x46DD794E
    record_writer = pytest.importorskip("tensorboard.summary.writer.record_writer")
    for data in (b"", b"brain.Event:2", bytes(range(256)) * 3):
        assert tfevents.masked_crc32c(data) == record_writer.masked_crc32c(data)
    # the protobuf encoding guide's examples
    assert tfevents.varint(1) == b"\x01" and tfevents.varint(300) == b"\xac\x02"
    assert tfevents.field_int64(1, 150) == b"\x08\x96\x01"
    assert tfevents.field_bytes(2, "testing") == b"\x12\x07testing"
    assert tfevents.varint(-1) == b"\xff" * 9 + b"\x01"
    # an Event as TensorBoard's own protobuf classes read it
    event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2")
    first = event_pb2.Event.FromString(tfevents.event(1.5, 0, file_version="brain.Event:2"))
    assert (first.wall_time, first.step, first.file_version) == (1.5, 0, "brain.Event:2")
    ev = event_pb2.Event.FromString(tfevents.event(2.25, 2**40, scalars={"val_accuracy": 0.5, "seconds/step": 3.0}))
    assert (ev.wall_time, ev.step) == (2.25, 2**40)
    assert [(v.tag, v.simple_value) for v in ev.summary.value] == [("val_accuracy", 0.5), ("seconds/step", 3.0)]


def test_tensorboard_events_hold_the_metrics_lines_across_a_resume(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    save_dir, lines = train_and_resume(tmp_path, log_to=["tensorboard"], log_every_steps=2)
    folder = os.path.join(save_dir, "tensorboard")
    assert len([f for f in os.listdir(folder) if "tfevents" in f]) == 2   # the resume writes its own file
    acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    want = expected_scalars(lines)
    assert {"val_accuracy", "train_loss", "seconds/step", "step/loss", "optimizer_reset"} <= set(want)
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert got == [(step, float(np.float32(x))) for step, x in points], tag   # simple_value is a float32
    epochs = [(e.step, e.value) for e in acc.Scalars("epoch")]
    assert epochs == [(5, 1.0), (10, 2.0), (15, 3.0), (20, 4.0)]


# ----------------------------------------------------------------------------- W&B


def wandb_records(path: str) -> list[dict]:
    """The records of a .wandb file, as wandb's own reader prints them."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", path],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_offline_wandb_run_holds_the_metrics_lines_across_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": tmp_path / "wandb-dir",
                       "WANDB_CONFIG_DIR": tmp_path / "wandb-config", "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
                       "WANDB_DATA_DIR": tmp_path / "wandb-data", "WANDB_BASE_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    save_dir, lines = train_and_resume(tmp_path, log_to=["wandb"], project="coconut-tests", name="wb")
    run_id = open(os.path.join(save_dir, "wandb_run_id")).read().strip()
    runs = sorted(d for d in os.listdir(os.path.join(save_dir, "wandb")) if d.startswith("offline-run-"))
    assert len(runs) == 2 and all(f"-{run_id}" in d for d in runs)   # the resume continues the run
    history = []
    for d in runs:
        (log,) = [f for f in os.listdir(os.path.join(save_dir, "wandb", d)) if f.endswith(".wandb")]
        records = wandb_records(os.path.join(save_dir, "wandb", d, log))
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert (run["project"], run["display_name"], run["run_id"]) == ("coconut-tests", "wb", run_id)
        assert run["config"]["update"]["log_to"] == ["wandb"] and run["config"]["update"]["n_embd"] == 32
        history += [r["history"]["item"] for r in records if r["type"] == "history"]
    epoch_lines = [line for line in lines if "val_accuracy" in line]
    assert len(epoch_lines) == 4
    assert [(h["_step"], h["val_accuracy"]) for h in history] == \
        [(line["global_step"], line["val_accuracy"]) for line in epoch_lines]
    for h, line in zip(history, epoch_lines):
        for tag, points in expected_scalars([line]).items():
            assert h[tag] == pytest.approx(points[0][1], rel=1e-12, abs=1e-12), tag


# ----------------------------------------------------------------------------- refusals


def test_log_to_an_unknown_sink_or_a_missing_wandb_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"key 'log_to' must be one of \['wandb', 'tensorboard'\], got 'tensorbord'"):
        config(tmp_path, log_to=["tensorbord"])
    with pytest.raises(ConfigError, match="key 'log_to' must be a list"):
        config(tmp_path, log_to="wandb")
    with pytest.raises(ConfigError, match="key 'log_to' names wandb twice"):
        config(tmp_path, log_to=["wandb", "wandb"])
    monkeypatch.setitem(sys.modules, "wandb", None)   # `import wandb` raises ImportError
    cfg = config(tmp_path, log_to=["tensorboard", "wandb"])
    with pytest.raises(ConfigError, match=r"key 'log_to': wandb needs `pip install wandb`"):
        Trainer(cfg, verbose=False)
    assert not os.path.exists(cfg.save_dir)   # refused before anything was written
    MetricLog(config(tmp_path, log_to=["tensorboard"]), cfg.save_dir).close()   # no wandb needed
