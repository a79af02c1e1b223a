"""A bench file, validated as a training config is: frozen dataclasses read with config.py's own
machinery, so an unknown key gets the nearest valid one ("did you mean 'runs'?"), a value of the
wrong type is refused, and both name the file and line. What the types cannot say (a run name
that is a folder name, a grid list that is not empty) is checked here, just after.

    spec, lines = read_bench_spec(Path("configs/bench_bccd.yaml"))
    spec.runs[1].name, dict(spec.runs[1].overrides)   # 'scratch', {'model.backbone_weights': None}

The dotted override keys inside `overrides` and `grid` are validated later, against the training
config, by detector.bench.plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from detector.config import SourceConfig, frozen_dict, plain_data
from detector.config_validation import Origins, build
from detector.errors import ConfigError
from detector.yamlfiles import read_yaml as read_yaml_file

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RunSpec:
    """One run: its folder name and dotted config overrides ({model.arch: ..., train.seed: 1})."""

    name: str
    overrides: dict[str, Any] = field(default_factory=frozen_dict)


@dataclass(frozen=True)
class BenchDataSpec:
    """The bench's data: replaces the base config's data section; `test` is what every run is
    scored on (default: a data.val shared by every run)."""

    train: SourceConfig | None = None
    val: SourceConfig | None = None
    modalities: tuple[str, ...] | None = None
    augment: tuple[Any, ...] | None = None
    test: SourceConfig | None = None


@dataclass(frozen=True)
class BenchSpec:
    """A bench file: a base train config (a path relative to the bench file, or a mapping),
    optional data, runs (default: the base alone, named 'base') times every combination of
    the grid's values."""

    base: Union[str, dict[str, Any]]
    data: BenchDataSpec | None = None
    runs: tuple[RunSpec, ...] = ()
    grid: dict[str, tuple[Any, ...]] = field(default_factory=frozen_dict)
    out_dir: str | None = None

    def plain_base(self):
        """The base as plain data (a path string, or a mutable dict for config_from_dict)."""
        return plain_data(self.base)

    def plain_data(self) -> dict:
        """The data section to put in the base, as plain data (no test, no unset keys)."""
        data = plain_data(self.data) if self.data is not None else {}
        return {k: v for k, v in data.items() if k != "test" and v is not None}


def read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """(plain data, dotted key -> line) of a bench file or train config; ConfigError naming
    the file (and line) when it cannot be read, is not YAML, or is not a mapping."""
    data, lines = read_yaml_file(path, "config", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (a train config or a bench with 'runs')")
    return data, lines


def bench_spec(data: dict, path: Path, lines: dict[str, int]) -> BenchSpec:
    """Validate a bench file's plain data into a frozen BenchSpec; errors name path:line."""
    origins = Origins(str(path), lines)
    spec = build(BenchSpec, data, "", origins)
    for index, run in enumerate(spec.runs):
        if not _NAME.match(run.name):
            raise ConfigError(f"{origins.of(f'runs.{index}.name')}: runs.{index}.name: expected "
                              f"a folder name (letters, digits, '.', '_', '-'), got {run.name!r}")
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError(f"{origins.of(f'grid.{key}')}: grid.{key}: expected a non-empty "
                              "list of values")
    return spec


def read_bench_spec(path: Path) -> tuple[BenchSpec, dict[str, int]]:
    """The bench file at `path`, validated, with its key lines (for later errors)."""
    data, lines = read_yaml(path)
    return bench_spec(data, path, lines), lines
