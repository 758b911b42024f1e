"""Where a run's metrics go: metrics.jsonl always, and the sinks the config's `log_to`
names: `wandb` (Weights & Biases) and `tensorboard` (event files, coconut.tfevents).

    metrics = MetricLog(cfg, save_dir)   # a ConfigError now if log_to needs a missing package
    metrics.open()                       # before training: a W&B run that cannot start fails here
    metrics.write(line)                  # each line the trainer logs, to every sink in turn
    metrics.close()                      # at the end of the run

The lines are those of metrics.jsonl (coconut.train): one per epoch, one every
`log_every_steps` optimizer steps, a `resume` event. W&B and TensorBoard see each as
numbers at a step (`scalars`). A resumed run appends: a new events file in the same
folder, and the same W&B run (its id is kept in the run folder's `wandb_run_id`).
W&B writes under the run folder (`wandb/`), offline unless `wandb_mode: online` or the
environment's WANDB_MODE says otherwise; `wandb sync` uploads an offline run later.
"""
from __future__ import annotations

import contextlib
import os
import secrets

from coconut.checkpoints import append_jsonl, writing
from coconut.config_fields import ConfigError
from coconut.tfevents import EventFileWriter


def scalars(line: dict) -> tuple[int, dict] | None:
    """(step, {tag: number}) of a metrics line, None for one without a step (the resume
    event). An epoch line is taken at its `global_step`, its numbers by key, a nested
    mapping flattened (`seconds/step`); a per-step line at its `step`, as `step/KEY`
    (`step/loss`), apart from the epoch lines' keys of the same name. Booleans count 0/1."""
    if "global_step" in line:
        step_key, prefix = "global_step", ""
    elif "step" in line:
        step_key, prefix = "step", "step/"
    else:
        return None
    return int(line[step_key]), _numbers({k: v for k, v in line.items() if k != step_key}, prefix)


def _numbers(mapping: dict, prefix: str) -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            out[prefix + key] = float(value)
    return out


class MetricSink:
    """Takes the run's metrics lines one by one."""

    def write(self, line: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonlSink(MetricSink):
    """Each line as JSON, appended to `path` (metrics.jsonl)."""

    def __init__(self, path: str):
        self.path = path

    def write(self, line: dict) -> None:
        with writing(self.path):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        append_jsonl(self.path, line)


class TensorBoardSink(MetricSink):
    """A new events file in `folder` holding each line's scalars."""

    def __init__(self, folder: str):
        with writing(folder):
            self.writer = EventFileWriter(folder)

    def write(self, line: dict) -> None:
        found = scalars(line)
        if found:
            with writing(self.writer.path):
                self.writer.add_scalars(*found)

    def close(self) -> None:
        self.writer.close()


class WandbSink(MetricSink):
    """A W&B run named by the config's `project` and `name`, the config its W&B config,
    written under `save_dir`; the run id kept in `save_dir/wandb_run_id` for a resume."""

    def __init__(self, cfg, save_dir: str):
        import wandb
        id_path = os.path.join(save_dir, "wandb_run_id")
        with writing(id_path):
            os.makedirs(save_dir, exist_ok=True)
            if os.path.exists(id_path):
                with open(id_path, encoding="utf-8") as f:
                    run_id = f.read().strip()
            else:
                run_id = secrets.token_hex(4)
                with open(id_path, "w", encoding="utf-8") as f:
                    f.write(run_id + "\n")
        self.run = wandb.init(project=cfg.project, name=cfg.name, config=cfg.to_dict(), dir=save_dir,
                              id=run_id, resume="allow", mode=os.environ.get("WANDB_MODE") or cfg.wandb_mode)

    def write(self, line: dict) -> None:
        found = scalars(line)
        if found:
            step, values = found
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


_SINKS = {"tensorboard": lambda cfg, save_dir: TensorBoardSink(os.path.join(save_dir, "tensorboard")),
          "wandb": WandbSink}


def check_log_to(cfg) -> None:
    """A ConfigError naming `log_to` for a sink that is unknown or cannot be imported."""
    unknown = [name for name in cfg.log_to if name not in _SINKS]
    if unknown:
        raise ConfigError(f"{cfg.source}: key 'log_to': unknown sink {unknown[0]!r}; known: {sorted(_SINKS)}")
    if "wandb" in cfg.log_to:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError(f"{cfg.source}: key 'log_to': wandb needs `pip install wandb` "
                              "(or `pip install coconut[wandb]`)") from None


class MetricLog:
    """metrics.jsonl and the config's `log_to` sinks, opened by `open()` or the first line
    written (a Trainer that never runs starts no W&B run) and closed together."""

    def __init__(self, cfg, save_dir: str):
        check_log_to(cfg)
        self.cfg, self.save_dir = cfg, save_dir
        self._sinks: list[MetricSink] | None = None
        self._closing = contextlib.ExitStack()

    def open(self) -> None:
        """Open the sinks now (a W&B run starts, online mode logs in), else at the first line."""
        if self._sinks is not None:
            return
        opened = [JsonlSink(os.path.join(self.save_dir, "metrics.jsonl"))]
        for name in self.cfg.log_to:
            opened.append(_SINKS[name](self.cfg, self.save_dir))
            self._closing.callback(opened[-1].close)
        self._sinks = opened

    def write(self, line: dict) -> None:
        self.open()
        for sink in self._sinks:
            sink.write(line)

    def close(self) -> None:
        """Close every sink opened (all of them, even if one fails); a later line opens them again."""
        self._sinks = None
        self._closing.close()
