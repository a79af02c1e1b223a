"""Export formats: a registry (dict + decorator) of exporter functions and their file suffix.

    @register_format("onnx", suffix=".onnx")
    def export_onnx(detector, path, nms=False) -> ExportPlan: ...  # the plan it exported

`export_model(detector, "onnx", path)` looks the format up (an unknown one raises with the valid
names). Loaders register by suffix (`@register_loader(".onnx")`): `load_exported(path)` runs the
one of the file's suffix, `is_exported(path)` says whether there is one.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from detector.errors import ConfigError

# Modules whose import registers their formats. Listed, not discovered.
FORMAT_MODULES = ("detector.export.onnx",)
_FORMATS: dict[str, tuple[str, Callable]] = {}
_LOADERS: dict[str, Callable] = {}


def register_format(name: str, suffix: str):
    def decorate(exporter: Callable) -> Callable:
        if name in _FORMATS:
            raise ValueError(f"export format {name!r} is already registered")
        _FORMATS[name] = (suffix, exporter)
        return exporter

    return decorate


def register_loader(suffix: str):
    def decorate(loader: Callable) -> Callable:
        if suffix in _LOADERS:
            raise ValueError(f"a loader for {suffix!r} files is already registered")
        _LOADERS[suffix] = loader
        return loader

    return decorate


def _load_formats() -> None:
    for module in FORMAT_MODULES:
        importlib.import_module(module)


def list_formats() -> list[str]:
    _load_formats()
    return sorted(_FORMATS)


def format_suffix(name: str) -> str:
    _load_formats()
    if name not in _FORMATS:
        raise ConfigError(f"--format: unknown export format {name!r}; valid formats: "
                          f"{', '.join(sorted(_FORMATS))}")
    return _FORMATS[name][0]


def export_model(detector, name: str, path: str | Path, **options):
    """Export `detector` in format `name` to `path`; returns the ExportPlan it exported."""
    format_suffix(name)  # raises for an unknown name
    return _FORMATS[name][1](detector, path, **options)


def is_exported(path: str | Path) -> bool:
    """Whether `path` has the suffix of an exported file a registered loader reads."""
    _load_formats()
    return Path(path).suffix.lower() in _LOADERS


def load_exported(path: str | Path, **options):
    """The Detector an exported file holds (eval mode), by the loader of its suffix."""
    _load_formats()
    suffix = Path(path).suffix.lower()
    if suffix not in _LOADERS:
        raise ConfigError(f"{path}: no loader for {suffix or 'suffix-less'} files; exported "
                          f"files end in {', '.join(sorted(_LOADERS))}")
    return _LOADERS[suffix](path, **options)
