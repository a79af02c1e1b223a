"""Training-run config: frozen dataclasses, read from YAML, validated at the boundary.

    config = load_config("configs/fasterrcnn_bccd.yaml", ["train.epochs=3", "train.lr=0.005"])

Every key is checked against the dataclasses below: an unknown key is refused with the nearest
valid one ("did you mean 'train.epochs'?"), a value of the wrong type is refused, and both name the
file and line (or the command-line override) they came from. The result is frozen (dicts become
read-only mappings, lists become tuples); `config_to_dict` turns it back into plain data for the
run directory's config.yaml. Modules never take a Config: the train command unpacks it into
explicit arguments.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from detector.config_bounds import bound_of
from detector.errors import ConfigError, suggestion
from detector.yamlfiles import read_yaml


def _frozen_dict() -> types.MappingProxyType:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class ModelConfig:
    arch: str | None = None  # a registered arch; None: take it from `weights` (a run checkpoint)
    weights: str | None = None  # registry name or path of pretrained detector weights / checkpoint
    backbone_weights: str | None = None  # classification backbone weights (ImageNet)
    class_map: Union[Literal["auto"], dict[str, str], None] = None  # 'auto' or {new: pretrained}
    in_channels: int | None = None  # None: from the data's modalities
    stem_init: Literal["sum", "zero", "mean", "random"] = "sum"
    image_size: int | None = None  # training image size given to the transforms
    options: dict[str, Any] = field(default_factory=_frozen_dict)  # family-specific build args


@dataclass(frozen=True)
class SourceConfig:
    """One dataset split, exactly as `read_dataset` takes it. A plain string is `source`."""

    source: str
    format: str = "auto"
    split: str | None = None
    images: str | None = None
    labels: str | None = None
    modalities: tuple[str, ...] | None = None  # None: data.modalities


@dataclass(frozen=True)
class DataConfig:
    train: SourceConfig
    val: SourceConfig | None = None
    modalities: tuple[str, ...] | None = None  # e.g. [rgb], [lwir], [rgb, lwir]; None: the card's
    augment: tuple[Any, ...] | None = None  # transform names or {name: {params}}; None: defaults


@dataclass(frozen=True)
class StageConfig:
    epochs: int
    train: tuple[str, ...]  # part names or prefixes: head, neck, backbone, backbone.3, stem
    lr_mult: dict[str, float] = field(default_factory=_frozen_dict)


@dataclass(frozen=True)
class AdaptMethodConfig:
    """One domain-adaptation method (detector/adapt/). A plain string is `name`."""

    name: str  # adversarial, mmd, teacher
    weight: float = 1.0  # multiplies the method's loss
    start_epoch: float = 0.0  # off before (the teacher's burn-in on source labels)
    ramp_epochs: float = 0.0  # strength ramps 0 -> 1 over these epochs from start_epoch (DANN)
    options: dict[str, Any] = field(default_factory=_frozen_dict)  # method-specific


@dataclass(frozen=True)
class AdaptConfig:
    """Unsupervised domain adaptation: target-domain images (labels never read) and methods."""

    target: SourceConfig  # a folder of images, a card split or a dataset; modalities: the model's
    methods: tuple[AdaptMethodConfig, ...]
    batch_size: int | None = None  # target images per step; None: train.batch_size


@dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = None  # None: the sum of the stages' epochs
    batch_size: int = 4
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    cosine: bool = True
    final_lr_ratio: float = 0.01  # cosine ends at lr * final_lr_ratio
    amp: bool = True  # only on CUDA
    clip_grad: float | None = 10.0  # max gradient norm; None: no clipping
    ema: bool = False
    ema_decay: float = 0.9998
    eval_every: int = 1
    eval_backend: Literal["faster", "pycocotools"] = "faster"
    stages: tuple[StageConfig, ...] | None = None
    preset: Literal["feature_extraction", "finetune_top", "finetune_all"] | None = None
    lr_mult: dict[str, float] = field(default_factory=_frozen_dict)  # applies to every stage
    layer_decay: float | None = None  # lr *= layer_decay ** depth, depth 0 at the head
    workers: int = 2
    seed: int = 0
    device: str | None = None  # None: cuda if available, else cpu
    out_dir: str = "runs/train"
    adapt: AdaptConfig | None = None  # domain adaptation to unlabelled target images


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)


class _Origins:
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


def _convert(value: Any, tp: Any, dotted: str, origins: _Origins) -> Any:
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
        if tp is SourceConfig and isinstance(value, str):
            value = {"source": value}
        if tp is AdaptMethodConfig and isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise _Mismatch("a mapping")
        return _build(tp, value, dotted, origins)
    raise TypeError(f"config type {tp!r} is not supported")  # a bug in this file, not user input


def _checked(value: Any, tp: Any, dotted: str, origins: _Origins) -> Any:
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


def _build(cls: type, data: dict, prefix: str, origins: _Origins) -> Any:
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


def _apply_override(data: dict, text: str, origins: _Origins) -> None:
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


def _check_consistency(config: Config, origins: _Origins) -> None:
    model, train = config.model, config.train
    if model.arch is None and model.weights is None:
        raise ConfigError(f"{origins.of('model')}: model needs 'arch' or 'weights' (a checkpoint)")
    if train.stages is not None and train.preset is not None:
        raise ConfigError(f"{origins.of('train.preset')}: give train.stages or train.preset, not both")
    if train.stages is not None:
        if not train.stages:
            raise ConfigError(f"{origins.of('train.stages')}: train.stages is empty")
        total = sum(stage.epochs for stage in train.stages)
        if train.epochs is not None and train.epochs != total:
            raise ConfigError(
                f"{origins.of('train.epochs')}: train.epochs is {train.epochs} but the stages "
                f"add up to {total}; drop train.epochs or make them agree"
            )
    elif train.epochs is None:
        raise ConfigError(f"{origins.of('train')}: missing key 'train.epochs' (or train.stages)")
    for i, stage in enumerate(train.stages or ()):
        if not stage.train:
            raise ConfigError(f"{origins.of(f'train.stages.{i}.train')}: train.stages.{i}.train: "
                              "expected the parts to train (head, neck, backbone, stem), got []")
    if train.adapt is not None:
        from detector.adapt.registry import adapt_problem

        problem = adapt_problem(train.adapt)  # (dotted key, message) or None
        if problem is not None:
            raise ConfigError(f"{origins.of(problem[0])}: {problem[1]}")


def config_from_dict(data: dict, overrides: list[str] = (), origin: str = "<config>",
                     lines: dict[str, int] | None = None) -> Config:
    """Validate plain data (as read from YAML) into a frozen Config; `origin` names it in errors."""
    origins = _Origins(origin, lines or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with model, data and train")
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep, plain copy the overrides may edit
    for text in overrides:
        _apply_override(data, text, origins)
    config = _build(Config, data, "", origins)
    _check_consistency(config, origins)
    return config


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted `overrides` ("train.lr=0.001", values parsed as YAML
    scalars) and validate it. Raises ConfigError naming the file and line (or the override)."""
    data, lines = read_yaml(path, "config", ConfigError)
    return config_from_dict(data if data is not None else {}, overrides, str(path), lines)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dict, types.MappingProxyType)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(config: Config) -> dict:
    """The config as plain nested dicts and lists (YAML-safe), every default filled in."""
    return _plain(config)
