"""A training run's configuration: one dataclass, read from YAML.

The reference's YAML files (facebookresearch/coconut `args/*.yaml`) load unchanged:
their flags `coconut`, `cot`, `no_thoughts`, `no_cot` pick the method as run.py does.
Our own keys add a method by name (`method`, overriding those flags), the model shape
for from-scratch runs, the tokenization, generated data, and evaluation settings.

    cfg = load_config("coconut/configs/default.yaml", overrides=["lr=3e-4"])
    cfg = load_config("prosqa-cpu")        # a shipped config by its name

Paths: relative `train_path`, `val_path`, `save_path`, `model_id` and
`load_model_path` are resolved against the WORKING DIRECTORY when the config is
loaded, as the reference's run.py does (its configs say `data/prosqa_train.json`
and are run from the repository root). The shipped configs therefore work from the
directory holding your `data/` folder. `$VAR` and `${VAR}` in a path are expanded;
an unset one is an error. A `model_id` that is no local path but a hub name
(`openai-community/gpt2`) stays as written: the model is read from the local Hugging
Face cache (coconut.hub_cache).

Official data: `train_path`/`val_path` may name a split shipped with the package as
`official:DATASET/SPLIT` (`official:prosqa/valid`, `official:prontoqa/train`, ...; see
coconut.data.official_names()). With the environment variable COCONUT_DATA set it is
that folder's file in the official layout instead ($COCONUT_DATA/prosqa/prosqa_valid.json),
so a copy of the data elsewhere can stand in for the packaged one.

Keys: the reference's, then ours: the method by name and its options, the model shape,
the data (files, generated, or the tokenization), run settings, and `recipe`, the
mapping of options that are not the reference's (coconut.recipes). This layer parses
and checks types and ranges; the method, the tokenization and the recipe check their
own options when they are built (coconut.build), also before any training.

Every error is a `ConfigError` naming the file and the key (and the line, where the
YAML gives one).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import yaml

from coconut import hub_cache
from coconut.config_fields import ConfigError, check_type, parse_yaml
from coconut.config import GPT2Config
from coconut.curriculum.registry import METHOD_KEYS
from coconut.data.official_splits import official_layout_path, official_names, official_path

GENERATED_DATASETS = ("prosqa", "prontoqa")
PATH_KEYS = ("train_path", "val_path", "save_path", "model_id", "load_model_path")
DATA_KEYS = ("train_path", "val_path")      # the keys that may name official data
OFFICIAL_PREFIX = "official:"


@dataclass
class GenerateData:
    """Generated training data: `n` training and `val_n` validation examples from one
    stream (`generate_prosqa(n + val_n, seed)`), the validation ones last. With a
    `val_path` as well, only the `n` training examples are generated and validation
    uses that file (the official split).

    fresh_each_epoch: epoch e >= 1 trains on n new examples of the same stream, those
    from n + val_n + (e - 1) * n on (after the validation ones), so no question is seen
    twice and a model cannot learn the training set by heart."""

    dataset: Literal["prosqa", "prontoqa"] = "prosqa"
    n: int = 2000
    val_n: int = 200
    seed: int = 0
    fresh_each_epoch: bool = False


@dataclass
class RunConfig:
    # ---- the reference's keys (args/*.yaml), same names and meanings ----------------
    project: str = "coconut"                 # the W&B project (with log_to: [wandb]), as in the reference
    name: str = "run"                        # checkpoints go to save_path/name
    save_path: str = "checkpoints"
    only_eval: bool = False                  # evaluate load_model_path on val_path, no training
    coconut: bool = False
    cot: bool = False
    no_thoughts: bool = False
    no_cot: bool = False
    # the keys that shape the method (coconut.curriculum.METHOD_KEYS): null = left out,
    # the method's own default (Coconut: 1, 5, 6, false, 0.0, true); the method checks them
    c_thought: Optional[int] = None
    epochs_per_stage: Optional[int] = None
    max_latent_stage: Optional[int] = None
    pad_latent_to_max: Optional[bool] = None
    save_only_improve: bool = False
    uniform_prob: Optional[float] = None
    model_id: Optional[str] = "openai-community/gpt2"   # with init: pretrained, a local HF directory or cached hub name
    load_model_path: Optional[str] = None    # a checkpoint directory whose weights start the run
    seed: int = 0
    resume: int = 0                          # start at this epoch (from checkpoint_N when it exists)
    bf16: bool = False                       # mixed precision as torch.autocast(bfloat16): see GPT2's bf16
    train_path: Optional[str] = None
    val_path: Optional[str] = None
    reset_optimizer: Union[bool, str, None] = None   # bool as the reference, or "epoch" | "stage" | "never"
    batch_size_training: int = 32
    debug: bool = False                      # as the reference: no checkpoints are written
    gradient_accumulation_steps: int = 1
    num_epochs: int = 50
    lr: float = 1e-4
    weight_decay: float = 0.01

    # ---- our keys ------------------------------------------------------------------
    method: Optional[str] = None             # a name in coconut.curriculum.METHODS; overrides the flags
    method_options: dict = field(default_factory=dict)   # the method's other fields, e.g. {n_pause: 6}
    first_stage_epochs: Optional[int] = None  # stage 0 lasts this many epochs (null: epochs_per_stage)
    recipe: dict = field(default_factory=dict)   # coconut.recipes: e.g. {embedding_std: 0.1, shuffle_nodes: true}
    init: Literal["scratch", "pretrained"] = "pretrained"
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_positions: int = 1024
    dropout: Optional[float] = None          # null: GPT-2's 0.1 from scratch, a pretrained model's own
    thought_projection: int = 0              # > 0: an MLP + LayerNorm of this width on every fed-back thought (CODI)
    tokenization: str = "gpt2"              # gpt2, or a symbolic one (coconut.tokenizer.symbolic)
    threads: Optional[int] = None            # C core threads (None: its default; under MPI cores / ranks)
    max_new_tokens: int = 128
    eval_batch_size: int = 64
    train_size: Optional[int] = None         # use only the first N training examples
    val_size: Optional[int] = None
    generate: Optional[GenerateData] = None  # generated data instead of train_path (and val_path unless set)
    log_every_steps: int = 0                 # also log every N optimizer steps (0: per epoch only)
    data_ahead: bool = True                  # generate.fresh_each_epoch: draw the next epoch's questions while one trains
    # where metrics go besides metrics.jsonl (coconut.metric_sinks): W&B under project/name, TensorBoard files
    log_to: list[Literal["wandb", "tensorboard"]] = field(default_factory=list)
    wandb_mode: Literal["offline", "online"] = "offline"   # online: uploads as it trains (needs `wandb login`)

    # where the config came from, for error messages; not a YAML key
    source: str = field(default="<defaults>", repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.generate, dict):
            self.generate = GenerateData(**self.generate)

    @property
    def save_dir(self) -> str:
        return os.path.join(self.save_path, self.name)

    def to_dict(self) -> dict:
        """The YAML keys and values (what a checkpoint records)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in _NOT_KEYS:
                continue
            value = getattr(self, f.name)
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out


_NOT_KEYS = ("source",)


def config_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig) if f.name not in _NOT_KEYS]


# ----------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike, overrides: list[str] | tuple = ()) -> RunConfig:
    """Read a YAML run configuration; `overrides` are "key=value" strings (the CLI's
    --set), the value read as YAML, a dotted key reaching into `generate` or
    `method_options` ("generate.n=100")."""
    raw, lines, path = read_config(path)
    for item in overrides:
        _apply_override(raw, item, lines)
    return config_from_dict(raw, source=path, lines=lines)


def read_config(path: str | os.PathLike) -> tuple[dict, dict, str]:
    """A config file's raw mapping, the line of each key, and the path it was read from
    (a shipped config by its name, else the file), before any key is checked."""
    path = preset_path(str(path))
    raw, lines = parse_yaml(read_text(path, "the config", "configs", presets), path)
    return raw, lines, path


def read_text(path: str, what: str, kind: str, shipped) -> str:
    """A YAML file's text, or a ConfigError naming it; for a bare name, `shipped()` (the
    names of the shipped `kind`) as a hint."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        hint = "" if os.sep in path else f"; shipped {kind}: {', '.join(shipped())}"
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror}){hint}") from None


def set_key(raw: dict, key: str, value, lines: dict | None = None, where: str | None = None) -> None:
    """Set `key` in a raw config mapping, a dotted key ("generate.n", "recipe.embedding_std")
    reaching into `generate`, `method_options` or `recipe`; `where` names the setting in
    the error a wrong dotted key gives."""
    head, dot, rest = key.partition(".")
    if dot:
        if head not in DOTTED_KEYS or not rest:
            raise ConfigError(f"{where or key}: only {', '.join(repr(k) for k in DOTTED_KEYS)} take dotted keys")
        inner = raw.get(head)
        inner = dict(inner) if isinstance(inner, dict) else {}
        inner[rest] = value
        raw[head] = inner
    else:
        raw[key] = value
    if lines is not None:
        lines.pop(head, None)   # the value no longer comes from the file's line


DOTTED_KEYS = ("generate", "method_options", "recipe")


PRESETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def preset_path(name: str) -> str:
    """A path as given when it exists; else a shipped config by its name ("prosqa-cpu"
    is coconut/configs/prosqa-cpu.yaml)."""
    return shipped_path(name, PRESETS_DIR)


def presets() -> list[str]:
    """Names of the shipped configs."""
    return shipped_names(PRESETS_DIR)


def shipped_path(name: str, folder: str) -> str:
    """A path as given when it exists; else `folder`'s NAME.yaml when there is one."""
    shipped = os.path.join(folder, name + ".yaml")
    if os.path.exists(name) or os.sep in name or not os.path.isfile(shipped):
        return name
    return shipped


def shipped_names(folder: str) -> list[str]:
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def config_from_dict(raw: dict, source: str = "<dict>", lines: dict | None = None) -> RunConfig:
    """Validate a mapping of YAML keys (unknown keys, types, values) into a RunConfig."""
    lines = lines or {}
    where = lambda key: f"{source}: {('line %d: ' % lines[key]) if key in lines else ''}key '{key}'"
    known = config_keys()
    values = {}
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where(key)}: unknown key{hint}")
        values[key] = check_type(key, value, _HINTS[key], where(key))
    if isinstance(values.get("generate"), dict):
        values["generate"] = _generate_data(values["generate"], where("generate"))
    for key in PATH_KEYS:
        if isinstance(values.get(key), str) and values[key].strip() in ("None", "none", ""):
            values[key] = None   # the reference writes `load_model_path: None`
    cfg = RunConfig(**values, source=source)
    _check_values(cfg, where)
    _resolve_paths(cfg, where)
    return cfg


def _apply_override(raw: dict, item: str, lines: dict) -> None:
    key, value = parse_override(item)
    set_key(raw, key, value, lines, where=f"--set {item!r}")


def parse_override(item: str) -> tuple[str, object]:
    """A `--set key=value` string as (key, value), the value read as YAML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError:
        return key, text


# ----------------------------------------------------------------------------- checks

_HINTS = typing.get_type_hints(RunConfig)


def _generate_data(raw: dict, where: str) -> GenerateData:
    hints = typing.get_type_hints(GenerateData)
    values = {}
    for key, value in raw.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}; known: {sorted(hints)}")
        values[key] = check_type(key, value, hints[key], f"{where}.{key}")
    gen = GenerateData(**values)
    if gen.n < 1 or gen.val_n < 0:
        raise ConfigError(f"{where}: n must be >= 1 and val_n >= 0, got n={gen.n}, val_n={gen.val_n}")
    return gen


def _check_values(cfg: RunConfig, where) -> None:
    positive = ("batch_size_training", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
                "n_positions", "max_new_tokens", "eval_batch_size")
    for key in positive:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{where(key)} must be >= 1, got {getattr(cfg, key)}")
    for key in ("resume", "log_every_steps", "thought_projection"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{where(key)} must be >= 0, got {getattr(cfg, key)}")
    twice = [name for i, name in enumerate(cfg.log_to) if name in cfg.log_to[:i]]
    if twice:
        raise ConfigError(f"{where('log_to')} names {twice[0]} twice")
    least = 0 if cfg.only_eval else 1   # a training run of no epochs would write and report nothing
    if cfg.num_epochs < least:
        raise ConfigError(f"{where('num_epochs')} must be >= {least}{'' if cfg.only_eval else ' for training'}, "
                          f"got {cfg.num_epochs}")
    for key in ("train_size", "val_size", "threads"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise ConfigError(f"{where(key)} must be >= 1 (or null), got {getattr(cfg, key)}")
    try:   # the head split is the model shape's own rule (GPT2Config), reported against this file
        GPT2Config(n_head=cfg.n_head, n_embd=cfg.n_embd)
    except ValueError as e:
        raise ConfigError(f"{where('n_embd')}: {e}") from None
    if cfg.dropout is not None and not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"{where('dropout')} must lie in [0, 1), got {cfg.dropout}")
    if cfg.lr < 0 or cfg.weight_decay < 0:
        key = "lr" if cfg.lr < 0 else "weight_decay"
        raise ConfigError(f"{where(key)} must be >= 0, got {getattr(cfg, key)}")
    if cfg.init == "pretrained" and cfg.tokenization != "gpt2":
        raise ConfigError(f"{where('init')}: a pretrained GPT-2 needs tokenization: gpt2, "
                          f"got {cfg.tokenization!r} (use init: scratch)")
    if cfg.generate is not None and cfg.train_path is not None:
        raise ConfigError(f"{where('generate')}: give either generate or train_path, not both")
    if cfg.generate is not None and cfg.val_path is None and cfg.generate.val_n < 1:
        raise ConfigError(f"{where('generate')}: no validation data: set generate.val_n >= 1 or val_path")
    if cfg.generate is None and cfg.val_path is None:
        raise ConfigError(f"{where('val_path')}: no validation data: set val_path or generate")


def method_keys(cfg: RunConfig) -> dict:
    """The keys that choose (the reference's flags) and shape (METHOD_KEYS) the method."""
    return {k: getattr(cfg, k) for k in ("coconut", "cot", "no_thoughts", "no_cot", *METHOD_KEYS)}


def _resolve_paths(cfg: RunConfig, where) -> None:
    """Official data names become files; other paths have `~` and `$VAR` / `${VAR}`
    expanded, then are made absolute."""
    for key in PATH_KEYS:
        value = getattr(cfg, key)
        if value is None:
            continue
        if key in DATA_KEYS and value.startswith(OFFICIAL_PREFIX):
            setattr(cfg, key, _official_file(value, where(key)))
            continue
        if key == "model_id" and (cfg.init != "pretrained"
                                  or hub_cache.is_repo_id(value) and not os.path.exists(value)):
            continue   # a hub name: looked up in the local hub cache when the model is built
        unset = [m.group(1) or m.group(2) for m in _ENV_VAR.finditer(value)
                 if (m.group(1) or m.group(2)) not in os.environ]
        if unset:
            raise ConfigError(f"{where(key)}: {value} names the environment variable {unset[0]}, "
                              f"which is not set (e.g. {unset[0]}=/path/to/folder coconut train ...)")
        setattr(cfg, key, os.path.abspath(os.path.expanduser(os.path.expandvars(value))))


_ENV_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _official_file(value: str, where: str) -> str:
    """`official:DATASET/SPLIT` -> $COCONUT_DATA's file in the official layout when that
    variable is set, else the packaged file."""
    dataset, _, split = value[len(OFFICIAL_PREFIX):].partition("/")
    try:
        layout_path = official_layout_path(dataset, split)
    except ValueError:
        names = ", ".join(OFFICIAL_PREFIX + name for name in official_names())
        raise ConfigError(f"{where}: unknown official data {value!r}; shipped: {names}") from None
    if os.environ.get("COCONUT_DATA"):
        return os.path.abspath(os.path.join(os.path.expanduser(os.environ["COCONUT_DATA"]), layout_path))
    return official_path(dataset, split)
