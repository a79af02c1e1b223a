"""Benchmark mAP across models and strategies: plan the runs (here), train and test each
(detector/bench/run.py), report (detector/bench/report.py).

A bench is either several training configs (each a normal `detector train` config; the run is
named after the file, and tested on its data.val unless a test split is given), or one bench file:

    # configs/bench_bccd.yaml
    out_dir: runs/bench_bccd              # optional; `detector bench --out DIR` wins
    base: fasterrcnn_bccd.yaml            # a train config (path relative to this file) or a mapping
    data:                                 # optional: replaces the base's data section
      train: {source: bccd, split: train}
      val: {source: bccd, split: val}
      test: {source: bccd, split: test}   # what every run is scored on (default: data.val)
    runs:
      - name: imagenet
      - name: scratch
        overrides: {model.backbone_weights: null}
    grid: {train.seed: [0, 1]}            # every run x every combination: imagenet_seed0, ...

Overrides are dotted config keys, validated by detector.config (unknown keys are refused with the
nearest valid one). Setting `train.stages` in an override drops the inherited `train.preset` and
`train.epochs` (the stages say both); setting `train.preset` drops inherited `train.stages`.
Command-line overrides apply to every run, last.

Each run trains with the engine's `fit` into <out>/<run>/ (built exactly as `detector train`
builds it), then its best checkpoint (by validation mAP; the last one without validation) is
scored on the test split. <out>/<run>/results.json records the scores with a hash of everything
that decides them (the resolved config and the test split); a run whose results.json carries
the same hash is reused, a run with the same training config and a last.pt is resumed. The run
folder also keeps test_predictions.json (COCO results) and test/ (PR curves, per-class AP).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from detector.config import (
    Config, DataConfig, SourceConfig, config_from_dict, config_to_dict, load_config,
)
from detector.errors import ConfigError, suggestion

BENCH_KEYS = ("base", "data", "runs", "grid", "out_dir")
RUN_KEYS = ("name", "overrides")
DATA_KEYS = tuple(f.name for f in fields(DataConfig)) + ("test",)
SOURCE_KEYS = tuple(f.name for f in fields(SourceConfig))
# Keys that say nothing about the scores: where the run lives, how many loader processes.
_NOT_HASHED = ("out_dir", "workers")
_RESULTS_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BenchRun:
    """One run of a bench: its folder name, the run it came from before grid expansion
    (`group`), the validated training config and the split it is scored on."""

    name: str
    group: str
    config: Config
    test: SourceConfig

    @property
    def train_hash(self) -> str:
        """Hash of the resolved training config (as `fit` writes it to config.yaml)."""
        return config_hash(config_to_dict(self.config))

    @property
    def results_hash(self) -> str:
        """Hash of everything that decides the results: training config and test split."""
        return _digest({"version": _RESULTS_VERSION, "train": self.train_hash,
                        "test": {f.name: getattr(self.test, f.name) for f in fields(SourceConfig)}})


@dataclass(frozen=True)
class BenchPlan:
    """The runs, the bench folder, the config files read (which no output may replace) and
    what chose the folder, as errors name it ('--out' or '<bench file>: out_dir')."""

    runs: tuple[BenchRun, ...]
    out_dir: Path
    files: tuple[Path, ...] = ()
    out_flag: str = "--out"


def _digest(data) -> str:
    text = json.dumps(data, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_nulls(v) for v in value]
    return value


def config_hash(config: dict) -> str:
    """16 hex digits identifying a resolved config (plain dict), ignoring train.out_dir and
    train.workers, which do not change the results. Null values are left out, so a key that a
    newer version adds with a null default does not invalidate earlier results."""
    train = {k: v for k, v in config.get("train", {}).items() if k not in _NOT_HASHED}
    return _digest(_without_nulls({**config, "train": train}))


def _nearest(key, valid, where: str) -> ConfigError:
    return ConfigError(f"{where}: unknown key '{key}'; {suggestion(key, valid)}")


def _check_keys(mapping: dict, valid, where: str, prefix: str = "") -> None:
    for key in mapping:
        if key not in valid:
            raise _nearest(f"{prefix}{key}", [f"{prefix}{v}" for v in valid], where)


def _source(value, where: str) -> SourceConfig:
    """A split as `read_dataset` takes it: a string (the source) or a mapping of SOURCE_KEYS."""
    if isinstance(value, str):
        return SourceConfig(source=value)
    if not isinstance(value, dict) or not isinstance(value.get("source"), str):
        raise ConfigError(f"{where}: expected a source string or a mapping with 'source', got {value!r}")
    _check_keys(value, SOURCE_KEYS, where, "data.test.")
    for key in ("format", "split", "images", "labels"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ConfigError(f"{where}: data.test.{key}: expected a string, got {value[key]!r}")
    modalities = value.get("modalities")
    if modalities is not None:
        if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
            raise ConfigError(f"{where}: data.test.modalities: expected a list of names")
        modalities = tuple(modalities)
    return SourceConfig(**{**value, "modalities": modalities})


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key ('runs.1.overrides') -> 1-based line in the bench file."""
    lines: dict[str, int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[prefix + str(key.value)] = key.start_mark.line + 1
                walk(value, f"{prefix}{key.value}.")
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[f"{prefix}{index}"] = item.start_mark.line + 1
                walk(item, f"{prefix}{index}.")

    walk(yaml.compose(text), "")
    return lines


def _read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
        lines = _key_lines(text) if text.strip() else {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (a train config or a bench with 'runs')")
    return data, lines


def is_bench_file(data: dict) -> bool:
    """A bench file has `runs`, `grid` or `base`; a train config has `model`."""
    return any(key in data for key in ("runs", "grid", "base"))


def _strategy_overrides(keys) -> list[str]:
    """Nulls that keep an override of the freezing strategy from clashing with the base's."""
    keys = set(keys)
    extra = []
    if "train.stages" in keys:
        extra += [f"{k}=null" for k in ("train.preset", "train.epochs") if k not in keys]
    if "train.preset" in keys and "train.stages" not in keys:
        extra.append("train.stages=null")
    return extra


def _override_texts(overrides: dict) -> list[str]:
    # JSON is YAML flow syntax: every value survives detector.config's YAML parsing as it was.
    texts = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return _strategy_overrides(overrides) + texts


def _cli_keys(overrides) -> list[str]:
    return [text.partition("=")[0].strip() for text in overrides]


def _grid(grid, where: str) -> list[tuple[str, dict]]:
    """[(name suffix, {dotted key: value})] for every combination of the grid's values."""
    if not grid:
        return [("", {})]
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: grid: expected a mapping of key: [values]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid.{key}: expected a non-empty list of values")
    combos = []
    for chosen in itertools.product(*[list(enumerate(v)) for v in grid.values()]):
        parts, overrides = [], {}
        for key, (index, value) in zip(grid, chosen):
            shown = value if isinstance(value, (str, int, float, bool)) and value is not None else index
            parts.append(f"{str(key).split('.')[-1]}{shown}")
            overrides[key] = value
        combos.append(("_" + "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p) for p in parts), overrides))
    return combos


def _load_base(base, bench_path: Path, lines: dict) -> tuple[dict, str, dict[str, int]]:
    """(plain config data, the name errors should give, its key lines)."""
    if isinstance(base, dict):
        inner = {k[len("base."):]: v for k, v in lines.items() if k.startswith("base.")}
        return base, str(bench_path), inner
    if not isinstance(base, str):
        raise ConfigError(f"{bench_path}:{lines.get('base', 1)}: base: expected a train config "
                          f"path or a mapping, got {base!r}")
    path = Path(base).expanduser()
    if not path.is_absolute() and (bench_path.parent / path).is_file():
        path = bench_path.parent / path  # relative to the bench file, else to the working folder
    data, base_lines = _read_yaml(path)
    return data, str(path), base_lines


def _plan_bench_file(path: Path, overrides: list[str],
                     test: SourceConfig | None) -> tuple[list[BenchRun], str | None]:
    data, lines = _read_yaml(path)
    _check_keys(data, BENCH_KEYS, str(path))
    if "base" not in data:
        raise ConfigError(f"{path}: missing key 'base' (a train config path or mapping)")
    base, base_name, base_lines = _load_base(data["base"], path, lines)
    if data.get("data") is not None:
        bench_data = data["data"]
        where = f"{path}:{lines.get('data', 1)}"
        if not isinstance(bench_data, dict):
            raise ConfigError(f"{where}: data: expected a mapping")
        _check_keys(bench_data, DATA_KEYS, where, "data.")
        if "test" in bench_data and test is None:
            test = _source(bench_data["test"], f"{path}:{lines.get('data.test', 1)}")
        # The bench's data replaces the base's; its lines are in another file.
        base = {**base, "data": {k: v for k, v in bench_data.items() if k != "test"}}
        base_lines = {k: v for k, v in base_lines.items() if not k.startswith("data")}
    runs = data.get("runs") or [{"name": "base"}]
    if not isinstance(runs, list):
        raise ConfigError(f"{path}:{lines.get('runs', 1)}: runs: expected a list of {{name, overrides}}")
    grid = _grid(data.get("grid"), f"{path}:{lines.get('grid', 1)}")
    planned = []
    for index, entry in enumerate(runs):
        where = f"{path}:{lines.get(f'runs.{index}', lines.get('runs', 1))}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: runs.{index}: expected a mapping with name and overrides")
        _check_keys(entry, RUN_KEYS, where, f"runs.{index}.")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: runs.{index}.name: expected a folder name (letters, "
                              f"digits, '.', '_', '-'), got {name!r}")
        run_overrides = entry.get("overrides") or {}
        if not isinstance(run_overrides, dict):
            raise ConfigError(f"{where}: runs.{index}.overrides: expected a mapping of "
                              f"dotted keys, e.g. {{model.arch: ..., train.seed: 1}}")
        for suffix, grid_overrides in grid:
            texts = _override_texts({**run_overrides, **grid_overrides})
            texts += _strategy_overrides(_cli_keys(overrides)) + list(overrides)
            try:
                config = config_from_dict(base, texts, base_name, base_lines)
            except ConfigError as e:
                raise ConfigError(f"{where}: run '{name}{suffix}': {e}") from e
            planned.append((name + suffix, name, config))
    if test is None:
        test = _default_test([config for _, _, config in planned], str(path))
    runs = [BenchRun(name, group, config, test) for name, group, config in planned]
    out_dir = data.get("out_dir")
    if out_dir is not None and not isinstance(out_dir, str):
        raise ConfigError(f"{path}:{lines.get('out_dir', 1)}: out_dir: expected a folder path")
    return runs, out_dir


def _default_test(configs: list[Config], where: str) -> SourceConfig:
    vals = {config.data.val for config in configs}
    if None in vals or len(vals) != 1:
        raise ConfigError(f"{where}: no test split: give data.test (or one data.val shared by "
                          f"every run) to score the runs on")
    return vals.pop()


def plan_bench(paths: list[str | Path], overrides: list[str] = (), out_dir: str | Path | None = None,
               test: SourceConfig | None = None) -> BenchPlan:
    """Validate the bench: one bench file, or several train configs. `overrides` ("key=value")
    apply to every run; `test` replaces the bench's test split. Raises ConfigError naming the
    file (and line) for any unknown key or bad value, before anything is trained."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("detector bench: give a bench file or one or more train configs")
    overrides = list(overrides)
    headers = {path: _read_yaml(path)[0] for path in paths}
    bench_files = [path for path, data in headers.items() if is_bench_file(data)]
    file_out = None
    if bench_files:
        if len(paths) > 1:
            raise ConfigError(f"{bench_files[0]}: a bench file (with runs/grid/base) must be the only "
                              f"CONFIG; list the train configs in its runs instead")
        runs, file_out = _plan_bench_file(paths[0], overrides, test)
    else:
        runs = []
        for path in paths:
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem)
            if name in {run.name for run in runs}:
                name = f"{name}-{len(runs)}"
            config = load_config(path, overrides)
            runs.append(BenchRun(name, name, config, config.data.val))
        if test is None:
            _default_test([run.config for run in runs], ", ".join(map(str, paths)))
    if test is not None:
        runs = [replace(run, test=test) for run in runs]
    names = [run.name for run in runs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"{paths[0]}: run names must be unique; repeated: {', '.join(duplicated)}")
    out = Path(out_dir or file_out or Path("runs/bench") / paths[0].stem)
    flag = "--out" if out_dir or not file_out else f"{paths[0]}: out_dir"
    runs = [_with_out_dir(run, out / run.name) for run in runs]
    files = [*paths, *[Path(p) for p in _base_files(paths[0], headers[paths[0]])]]
    return BenchPlan(tuple(runs), out, tuple(files), flag)


def _base_files(path: Path, data: dict) -> list[Path]:
    """The base train config a bench file names (read as `_load_base` finds it)."""
    base = data.get("base")
    if not isinstance(base, str):
        return []
    beside = path.parent / Path(base).expanduser()
    return [beside if not Path(base).is_absolute() and beside.is_file() else Path(base)]


def _with_out_dir(run: BenchRun, folder: Path) -> BenchRun:
    train = replace(run.config.train, out_dir=str(folder))
    return replace(run, config=replace(run.config, train=train))
