"""Model registry: a dict and a decorator (timm's `register_model`, torchvision's builders).

    @register_model("fasterrcnn_resnet50_fpn", family="rcnn")
    def fasterrcnn_resnet50_fpn(class_names, weights=None, ...): -> Detector

`build_detector(arch, class_names, ...)` looks the name up; an unknown name raises with the list
of valid names. Registering a name twice raises.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from detector.errors import ConfigError, suggestion

# Modules whose import registers their archs. Listed, not discovered: nothing sniffs names.
ADAPTER_MODULES = ("detector.models.rcnn", "detector.models.ultralytics", "detector.models.yolov5")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, family: str):
    """Decorator registering `builder` under `name` (family: 'rcnn', 'yolo', 'yolov5')."""

    def decorate(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, family, builder)
        return builder

    return decorate


def _load_adapters() -> None:
    for module in ADAPTER_MODULES:  # a family that fails to import is an error, never skipped
        importlib.import_module(module)


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered archs (of one `family`: 'rcnn', 'yolo', 'yolov5'), sorted."""
    _load_adapters()
    return sorted(n for n, e in _MODELS.items() if family is None or e.family == family)


def get_model_entry(arch: str) -> ModelEntry:
    _load_adapters()
    if arch not in _MODELS:
        near = suggestion(arch, sorted(_MODELS), what=None)
        raise ConfigError(f"model.arch: unknown model {arch!r}; {near + ' ' if near else ''}"
                          f"valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[arch]


def build_detector(arch: str, class_names: list[str], **kwargs):
    """Build the Detector registered as `arch` for `class_names`.

    kwargs go to the builder: weights (name or path of pretrained detector weights),
    backbone_weights, in_channels (default 3), class_map ('auto', a dict, or None), and
    family-specific options.
    """
    return get_model_entry(arch).builder(list(class_names), **kwargs)
