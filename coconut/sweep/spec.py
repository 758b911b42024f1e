"""A sweep's spec: a base config, the axes whose product is the grid, the settings some
rows need, the analyses after training, where the rows go and how many threads each gets.

    base: prosqa-cpu-thoughts            # a shipped config by name, a YAML path, or a mapping
    axes:                                # the grid: the product of these lists
      method: [coconut, cot, icot]
      seed: [0, 1, 2]
      recipe.embedding_std: [0.05, 0.1]  # any config key, dotted into generate / method_options / recipe
    variants:                            # one more axis, `variant` (optional): named sets of keys,
      preset: {}                         #   for what one key per axis cannot say (one factor at a time)
      fresh_stages: {epochs_per_stage: 6, first_stage_epochs: 14}
    set: {num_epochs: 64}                # every row (optional)
    options:                             # some rows (optional): `set` where every `when` key matches
      - when: {method: icot}             # a value, or a list of values any of which matches
        set: {method_options.tokens_removed_per_epoch: 1}
    analyses: [k_sweep, probe, path_classes, splits]   # after training (optional)
    splits: {ood: data/prosqa_ood.json}  # the extra evaluation files `splits` scores
    out: runs/my-sweep                   # the run folders and results.jsonl
    threads: 1                           # per row (default 1)

A row is named after the base and its axis values (PRESET-METHOD[-seedS][-KEYVALUE...]
[-VARIANT]),
the names the benchmarks' run folders have always had. Every error is a ConfigError
naming the spec file, the line and the key, as coconut.run_config's are; every row's
config is built and checked when the spec is read, before anything trains.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field

import yaml

from coconut.config_fields import ConfigError, parse_yaml
from coconut.run_config import (DOTTED_KEYS, PRESETS_DIR, RunConfig, config_from_dict, config_keys, parse_override,
                                read_config, read_text, set_key, shipped_names,
                                shipped_path)

SPECS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sweeps")
ANALYSES = ("k_sweep", "probe", "path_classes", "splits")
SPEC_KEYS = ("base", "axes", "variants", "set", "options", "analyses", "splits", "out", "threads")
# what the sweep sets on every row itself
RESERVED = ("name", "save_path", "threads")


@dataclass
class Row:
    """One run of the grid: its name, its axis values and every key the sweep sets."""
    name: str
    values: dict                 # axis -> value, in the axes' order
    cfg: RunConfig               # the resolved config: base, set, axes, options, name, save_path, threads
    base_name: str = ""          # the spec's base, as the results name it

    @property
    def config_hash(self) -> str:
        return config_hash(self.cfg.to_dict())


@dataclass
class Spec:
    source: str                  # the file (or "<dict>") errors name
    base: str | dict
    base_name: str               # the rows' names start with it
    axes: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)     # name -> {key: value}: the `variant` axis
    set: dict = field(default_factory=dict)
    options: list = field(default_factory=list)     # [(when, set)]
    analyses: tuple = ()
    splits: dict = field(default_factory=dict)       # name -> data file
    out: str = "runs/sweep"
    threads: int = 1
    rows: list = field(default_factory=list)         # the grid, built and checked by load_spec

    @property
    def grid_axes(self) -> dict:
        """The axes, and the variants' names as one more, `variant`."""
        return {**self.axes, "variant": list(self.variants)} if self.variants else self.axes


def config_hash(config: dict) -> str:
    """What identifies a row's training: its resolved config without the folder it is
    saved in, the package's own files named relative to the package (so a checkout
    elsewhere has the same hashes)."""
    package = os.path.dirname(PRESETS_DIR)
    text = json.dumps({k: v for k, v in config.items() if k != "save_path"}, sort_keys=True, default=str)
    return hashlib.sha256(text.replace(package, "<coconut>").encode()).hexdigest()[:16]


def spec_path(name: str) -> str:
    """A path as given when it exists; else a shipped spec by its name
    ("prosqa-cpu-thoughts" is coconut/sweeps/prosqa-cpu-thoughts.yaml)."""
    return shipped_path(name, SPECS_DIR)


def shipped_specs() -> list[str]:
    return shipped_names(SPECS_DIR)


def load_spec(spec: str | os.PathLike | dict, out: str | None = None, overrides=()) -> Spec:
    """A spec from a YAML file, a shipped spec's name, or a mapping; `out` replaces the
    spec's folder; `overrides` are "key=value" strings (`coconut sweep --set`), the value
    read as YAML, a dotted key reaching one level in ("axes.seed=[0, 1, 2]"). Every row's
    config is built and its method checked here."""
    if isinstance(spec, dict):
        raw, lines, source = dict(spec), {}, "<dict>"
    else:
        source = spec_path(str(spec))
        text = read_text(source, "the sweep spec", "specs", shipped_specs)
        raw, lines = parse_yaml(text, source)
        lines.update(_nested_lines(text))
    for item in overrides:
        _override(raw, item, lines)
    where = _where(source, lines)
    for key in raw:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1, cutoff=0.6)
            raise ConfigError(f"{where(key)}: unknown key{f' (did you mean {close[0]!r}?)' if close else ''}; "
                              f"a spec has {', '.join(SPEC_KEYS)}")
    if "base" not in raw:
        raise ConfigError(f"{source}: no 'base': name the config the rows start from (a shipped config, a YAML "
                          "path or a mapping)")
    base = raw["base"]
    if isinstance(base, str):
        base_name = os.path.splitext(os.path.basename(base))[0]
    elif isinstance(base, dict):
        base_name = str(base.get("name", "sweep"))
    else:
        raise ConfigError(f"{where('base')}: expected a config name, a YAML path or a mapping, got {_kind(base)}")
    s = Spec(source=source, base=base, base_name=base_name)
    s.axes = _mapping(raw, "axes", where)
    for key, values in s.axes.items():
        _check_key(key, f"{where('axes.' + key)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where('axes.' + key)}: expected a non-empty list of values, got {_kind(values)}")
        if len(set(map(_canonical, values))) != len(values):
            raise ConfigError(f"{where('axes.' + key)}: a value appears twice in {values}")
    s.variants = _mapping(raw, "variants", where)
    for name, keys in s.variants.items():
        here = where("variants." + name)
        if not re.fullmatch(r"[\w.-]+", name):
            raise ConfigError(f"{here}: a variant's name is letters, digits, . _ - (it ends the rows' names)")
        if not isinstance(keys, dict):
            raise ConfigError(f"{here}: expected a mapping of config keys ({{}} for the base as it is), "
                              f"got {_kind(keys)}")
        for key in keys:
            _check_key(key, f"{here}: key '{key}'")
            if key in s.axes:
                raise ConfigError(f"{here}: '{key}' is an axis; a variant sets what the axes leave alone")
    s.set = _mapping(raw, "set", where)
    for key in s.set:
        _check_key(key, where("set." + key))
    s.options = _options(raw.get("options", []), where("options"), s.grid_axes, s.set)
    s.analyses = tuple(_analyses(raw.get("analyses", []), where("analyses")))
    s.splits = _mapping(raw, "splits", where)
    for name, path in s.splits.items():
        if not isinstance(path, str) or not re.fullmatch(r"[\w.-]+", str(name)):
            raise ConfigError(f"{where('splits.' + str(name))}: expected NAME (letters, digits, . _ -): a data file")
    s.splits = {name: path if path.startswith("official:") else os.path.abspath(os.path.expanduser(path))
                for name, path in s.splits.items()}
    if s.splits and "splits" not in s.analyses:
        s.analyses += ("splits",)
    if "splits" in s.analyses and not s.splits:
        raise ConfigError(f"{where('analyses')}: the splits analysis needs 'splits: {{NAME: data file, ...}}'")
    out = out if out is not None else raw.get("out", os.path.join("runs", base_name))
    if not isinstance(out, str) or not out:
        raise ConfigError(f"{where('out')}: expected a folder, got {_kind(out)}")
    s.out = os.path.abspath(os.path.expanduser(out))
    s.threads = raw.get("threads", 1)
    if not isinstance(s.threads, int) or isinstance(s.threads, bool) or s.threads < 1:
        raise ConfigError(f"{where('threads')}: expected a number of threads >= 1, got {_kind(s.threads)}")
    s.rows = _grid(s, where)
    return s


def _override(raw: dict, item: str, lines: dict) -> None:
    key, value = parse_override(item)
    head, dot, rest = key.partition(".")
    if dot:
        inner = raw.get(head)
        if inner is not None and not isinstance(inner, dict):
            raise ConfigError(f"--set {item!r}: '{head}' is no mapping")
        raw[head] = {**(inner or {}), rest: value}
    else:
        raw[key] = value
    lines.pop(key, None)


def _grid(s: Spec, where) -> list[Row]:
    """The product of the axes (and the variants), each row's config resolved and checked."""
    from coconut.build import build_method
    if isinstance(s.base, dict):
        base_raw, base_lines, base_source = dict(s.base), {}, f"{s.source}: base"
    else:
        try:
            base_raw, base_lines, base_source = read_config(s.base)
        except ConfigError as e:
            raise ConfigError(f"{where('base')}: {e}") from None
    rows, names = [], {}
    axes = s.grid_axes
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        settings = {**s.set, **{k: v for k, v in values.items() if k != "variant"},
                    **s.variants.get(values.get("variant"), {})}
        for when, extra in s.options:
            if all(_canonical(values["variant"] if k == "variant" else settings.get(k)) in map(_canonical, v)
                   for k, v in when.items()):
                settings.update(extra)
        name = row_name(s.base_name, values)
        if name in names:
            raise ConfigError(f"{where('axes')}: rows {names[name]} and {values} would share the folder {name}")
        names[name] = values
        raw, lines = dict(base_raw), dict(base_lines)
        for key, value in {**settings, "name": name, "save_path": s.out, "threads": s.threads}.items():
            set_key(raw, key, value, lines)
        source = f"{s.source}: row {name} (base {base_source})"
        cfg = config_from_dict(raw, source=source, lines=lines)
        try:
            build_method(cfg)   # the method checks its keys and options now, not in a worker
        except ValueError as e:
            raise e if isinstance(e, ConfigError) else ConfigError(f"{source}: method: {e}") from None
        rows.append(Row(name=name, values=values, cfg=cfg, base_name=s.base_name))
    return rows


def row_name(base: str, values: dict) -> str:
    """BASE-METHOD[-seedS][-KEYVALUE...]: seed 0 leaves no part, as a lone run's name has none."""
    parts = [base]
    for key, value in values.items():
        if key == "method":
            parts.append(str(value))
        elif key == "seed":
            parts += [f"seed{value}"] if value != 0 else []
        elif key == "variant":
            parts.append(str(value))
        else:
            parts.append(f"{key.rpartition('.')[2]}{_canonical(value)}")
    return re.sub(r"[^\w.=-]+", "_", "-".join(parts))


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def _check_key(key, where: str) -> None:
    head, dot, rest = str(key).partition(".")
    if head in RESERVED:
        raise ConfigError(f"{where}: the sweep sets '{head}' itself (the row's name, `out`, `threads`)")
    if head not in config_keys():
        close = difflib.get_close_matches(head, config_keys(), n=1, cutoff=0.6)
        raise ConfigError(f"{where}: not a config key{f' (did you mean {close[0]!r}?)' if close else ''}")
    if dot and (head not in DOTTED_KEYS or not rest):
        raise ConfigError(f"{where}: only {', '.join(DOTTED_KEYS)} take dotted keys")


def _mapping(raw: dict, key: str, where) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where(key)}: expected a mapping, got {_kind(value)}")
    return {str(k): v for k, v in value.items()}


def _options(value, where: str, axes: dict, every: dict) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of {{when: {{KEY: VALUE(S)}}, set: {{KEY: VALUE}}}}, "
                          f"got {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(item, dict) or set(item) != {"when", "set"}:
            raise ConfigError(f"{here}: expected {{when: {{KEY: VALUE(S)}}, set: {{KEY: VALUE}}}}, got {item!r}")
        when, extra = item["when"], item["set"]
        if not isinstance(when, dict) or not when or not isinstance(extra, dict) or not extra:
            raise ConfigError(f"{here}: 'when' and 'set' must be non-empty mappings")
        for key in when:
            if key not in axes and key not in every:
                raise ConfigError(f"{here}.when: '{key}' is neither an axis nor a key of 'set'")
        for key in extra:
            _check_key(key, f"{here}.set.{key}")
        out.append(({str(k): v if isinstance(v, list) else [v] for k, v in when.items()},
                    {str(k): v for k, v in extra.items()}))
    return out


def _analyses(value, where: str) -> list:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{where}: expected a list of analyses ({', '.join(ANALYSES)}), got {_kind(value)}")
    for a in value:
        if a not in ANALYSES:
            close = difflib.get_close_matches(a, ANALYSES, n=1, cutoff=0.6)
            raise ConfigError(f"{where}: unknown analysis {a!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                              f"known: {', '.join(ANALYSES)}")
    return list(dict.fromkeys(value))


def _nested_lines(text: str) -> dict:
    """The line of each second-level key ("axes.method": 4)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = {}
    for key_node, value_node in getattr(root, "value", []):
        if isinstance(value_node, yaml.MappingNode):
            for inner, _ in value_node.value:
                lines[f"{key_node.value}.{inner.value}"] = inner.start_mark.line + 1
    return lines


def _where(source: str, lines: dict):
    return lambda key: f"{source}: {('line %d: ' % lines[key]) if key in lines else ''}key '{key}'"


def _kind(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"
