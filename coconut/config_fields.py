"""YAML read into typed fields: the mapping and the line of each key, and each value
checked against its annotation (bool, int, float, str, Literal, Optional, Union,
lists, mappings), every refusal a ConfigError naming the file, the line and the key."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Literal, Union

import yaml


class ConfigError(ValueError):
    """A configuration the trainer refuses; the message names the file and the key."""


def parse_yaml(text: str, path: str) -> tuple[dict, dict]:
    """(mapping, line of each top-level key), refusing duplicate keys."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: {place}malformed YAML ({problem})") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values, "
                          f"got a {type(data).__name__}")
    lines: dict = {}
    for key_node, _ in root.value:
        key = key_node.value
        if key in lines:
            raise ConfigError(f"{path}: line {key_node.start_mark.line + 1}: key '{key}' appears twice "
                              f"(first on line {lines[key]})")
        lines[key] = key_node.start_mark.line + 1
    return data, lines


def _describe(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def check_type(key, value, hint, where):
    """The value converted to the annotated type, or a ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_type(key, value, arg, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where} must be {_hint_name(hint)}, got {_describe(value)}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint_text = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{hint_text}")
        return value
    if origin is list:   # each item checked against the item type: list[Literal["a", "b"]]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {_describe(value)}")
        (item,) = typing.get_args(hint)
        return [check_type(key, v, item, where) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        number = None
        if isinstance(value, str):
            # PyYAML reads `1e-4` (no dot) as a string: accept number literals written so.
            try:
                number = float(value)
            except ValueError:
                pass
        elif not isinstance(value, bool) and isinstance(value, (int, float)):
            number = float(value)
        if number is None:
            raise ConfigError(f"{where} must be a number, got {_describe(value)}")
        if not math.isfinite(number):   # `.nan` / `.inf` would train to nan or stop nothing
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {_describe(value)}")
        return value
    if hint is dict or dataclasses.is_dataclass(hint):   # a mapping of the dataclass's fields
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {_describe(value)}")
        return value
    raise TypeError(f"RunConfig: no check for the annotation {hint!r} of {key}")


def _hint_name(hint) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    parts = [names.get(a, getattr(a, "__name__", str(a))) for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(parts)
