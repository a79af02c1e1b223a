"""Plain data (as read from YAML) -> the frozen config dataclasses of config.py, checked.

    origins = Origins("run.yaml", key_lines)       # where each dotted key came from
    apply_override(data, "train.lr=0.005", origins)
    config = build(Config, data, "", origins)

`build` walks a dataclass's type hints: every key must be a field (an unknown key is refused
with the nearest valid one), every value must fit its type (bool, int, float, str, Literal,
Optional/Union, tuple[...] from a list, dict[...], a nested dataclass from a mapping, or from a
plain string where the dataclass names a SHORTHAND field) and its bound in config_bounds.py.
Each ConfigError names the file and line, or the command-line override, the value came from.
Dicts become read-only mappings and lists tuples, so the result cannot change mid-run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

import yaml

from detector.config_bounds import bound_of
from detector.errors import ConfigError, suggestion


class Origins:
    """Where each dotted key came from: 'file.yaml:12' or "override 'train.lr=x'"."""

    def __init__(self, file: str, lines: dict[str, int]):
        self.file = file
        self.places = {key: f"{file}:{line}" for key, line in lines.items()}

    def of(self, dotted: str) -> str:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            place = self.places.get(".".join(parts[:end]))
            if place:
                return place
        return self.file


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "anything"
    friendly = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return friendly.get(tp, getattr(tp, "__name__", str(tp)))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


class _Mismatch(Exception):
    """A value that does not fit a type (turned into a ConfigError with the key's place)."""


def _convert(value: Any, tp: Any, dotted: str, origins: Origins) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return _freeze(value)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, dotted, origins)
            except _Mismatch:
                continue
        raise _Mismatch(_type_name(tp))
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch(_type_name(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch("an integer")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        # YAML 1.1 reads `1e-3` (no dot) as a string; it is plainly meant as a number.
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise _Mismatch("a number")
        # no key of a recipe means anything with .nan or .inf; they would only surface mid-run
        if not math.isfinite(number):
            raise _Mismatch("a finite number")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("a string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(_type_name(tp))
        item_type = typing.get_args(tp)[0]
        return tuple(
            _checked(item, item_type, f"{dotted}.{i}", origins) for i, item in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(_type_name(tp))
        key_type, value_type = typing.get_args(tp)
        return types.MappingProxyType(
            {
                _checked(k, key_type, f"{dotted}.{k}", origins): _checked(
                    v, value_type, f"{dotted}.{k}", origins
                )
                for k, v in value.items()
            }
        )
    if dataclasses.is_dataclass(tp):
        shorthand = getattr(tp, "SHORTHAND", None)  # the one key a plain string stands for
        if shorthand is not None and isinstance(value, str):
            value = {shorthand: value}
        if not isinstance(value, dict):
            raise _Mismatch("a mapping")
        return build(tp, value, dotted, origins)
    raise TypeError(f"config type {tp!r} is not supported")  # a bug in this file, not user input


def _checked(value: Any, tp: Any, dotted: str, origins: Origins) -> Any:
    try:
        converted = _convert(value, tp, dotted, origins)
    except _Mismatch as e:
        raise ConfigError(
            f"{origins.of(dotted)}: {dotted}: expected {e}, got {value!r}"
        ) from None
    bound = bound_of(dotted)
    if bound is not None and isinstance(converted, (int, float)) and not isinstance(converted, bool) \
            and not bound.admits(converted):
        raise ConfigError(f"{origins.of(dotted)}: {dotted}: expected {bound}, got {value!r}")
    return converted


def build(cls: type, data: dict, prefix: str, origins: Origins) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    dot = f"{prefix}." if prefix else ""
    for key in data:
        if key not in fields:
            dotted = f"{dot}{key}"
            hint = suggestion(dotted, [f"{dot}{name}" for name in fields])
            raise ConfigError(f"{origins.of(dotted)}: unknown key '{dotted}'; {hint}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _checked(data[name], hints[name], f"{dot}{name}", origins)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{origins.of(prefix)}: missing key '{dot}{name}'")
    return cls(**values)


def apply_override(data: dict, text: str, origins: Origins) -> None:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({e})") from e
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {text!r}: '{part}' is not inside a mapping")
        node = node.setdefault(part, {})
        if node is None:
            raise ConfigError(f"override {text!r}: '{part}' is null in the config")
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {text!r}: '{parts[-2]}' is not a mapping")
    # A stale line of the file must not be blamed for a value the command line gave.
    for dotted in [d for d in origins.places if d == key or d.startswith(key + ".")]:
        del origins.places[dotted]
    origins.places[key] = f"override {text!r}"
