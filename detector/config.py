"""Training-run config: frozen dataclasses, read from YAML, validated at the boundary.

    config = load_config("configs/fasterrcnn_bccd.yaml", ["train.epochs=3", "train.lr=0.005"])

Every key is checked against the dataclasses below: an unknown key is refused with the nearest
valid one ("did you mean 'train.epochs'?"), a value of the wrong type is refused, and both name the
file and line (or the command-line override) they came from. The result is frozen (dicts become
read-only mappings, lists become tuples); `config_to_dict` turns it back into plain data for the
run directory's config.yaml. Modules never take a Config: recipe.py unpacks it into explicit
arguments. This file holds the dataclasses (the recipe's schema) and the entry points; the
checking of plain data against them, key origins and overrides are config_validation.py's.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import yaml

from detector.config_validation import Origins, apply_override, build
from detector.errors import ConfigError
from detector.yamlfiles import read_yaml


def frozen_dict() -> types.MappingProxyType:
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
    options: dict[str, Any] = field(default_factory=frozen_dict)  # family-specific build args


@dataclass(frozen=True)
class SourceConfig:
    """One dataset split, exactly as `read_dataset` takes it. A plain string is `source`."""

    SHORTHAND: ClassVar[str] = "source"
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
    lr_mult: dict[str, float] = field(default_factory=frozen_dict)


@dataclass(frozen=True)
class AdaptMethodConfig:
    """One domain-adaptation method (detector/adapt/). A plain string is `name`."""

    SHORTHAND: ClassVar[str] = "name"
    name: str  # adversarial, mmd, teacher
    weight: float = 1.0  # multiplies the method's loss
    start_epoch: float = 0.0  # off before (the teacher's burn-in on source labels)
    ramp_epochs: float = 0.0  # strength ramps 0 -> 1 over these epochs from start_epoch (DANN)
    options: dict[str, Any] = field(default_factory=frozen_dict)  # method-specific


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
    warmup_bias_lr: float = 0.0  # > 0: biases start at this lr and fall to lr in the warmup (YOLO: 0.1)
    cosine: bool = True
    final_lr_ratio: float = 0.01  # cosine ends at lr * final_lr_ratio
    amp: bool = True  # only on CUDA
    clip_grad: float | None = 10.0  # max gradient norm; None: no clipping
    ema: bool = False
    ema_decay: float = 0.9998
    eval_every: int = 1
    eval_backend: Literal["hotcoco", "faster", "pycocotools"] = "hotcoco"
    stages: tuple[StageConfig, ...] | None = None
    preset: Literal["feature_extraction", "finetune_top", "finetune_all"] | None = None
    lr_mult: dict[str, float] = field(default_factory=frozen_dict)  # applies to every stage
    layer_decay: float | None = None  # lr *= layer_decay ** depth, depth 0 at the head
    workers: int = 2
    seed: int = 0
    device: str | None = None  # None: cuda if available, else cpu
    out_dir: str = "runs/train"
    adapt: AdaptConfig | None = None  # domain adaptation to unlabelled target images
    sync_bn: bool = False  # SyncBatchNorm for trained BatchNorm under torchrun (CUDA only)
    loggers: tuple[Literal["csv", "tensorboard"], ...] = ("csv",)  # detector/train/loggers.py


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)


def _check_consistency(config: Config, origins: Origins) -> None:
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
    origins = Origins(origin, lines or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with model, data and train")
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep, plain copy the overrides may edit
    for text in overrides:
        apply_override(data, text, origins)
    config = build(Config, data, "", origins)
    _check_consistency(config, origins)
    return config


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted `overrides` ("train.lr=0.001", values parsed as YAML
    scalars) and validate it. Raises ConfigError naming the file and line (or the override)."""
    data, lines = read_yaml(path, "config", ConfigError)
    return config_from_dict(data if data is not None else {}, overrides, str(path), lines)


def plain_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dict, types.MappingProxyType)):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value


def config_to_dict(config: Config) -> dict:
    """The config as plain nested dicts and lists (YAML-safe), every default filled in."""
    return plain_data(config)
