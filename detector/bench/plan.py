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

The file itself is read as frozen dataclasses (detector/bench/spec.py) by detector.config's own
validation; overrides are dotted config keys, validated by detector.config against the training
config (unknown keys are refused with the nearest valid one). Setting `train.stages` in an override drops the inherited `train.preset` and
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

from detector.bench.spec import RunSpec, bench_spec, read_yaml
from detector.config import Config, SourceConfig, config_from_dict, config_to_dict, load_config
from detector.errors import ConfigError
# Keys that say nothing about the scores: where the run lives, how many loader processes.
_NOT_HASHED = ("out_dir", "workers")
_RESULTS_VERSION = 1


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


def _grid(grid: dict) -> list[tuple[str, dict]]:
    """[(name suffix, {dotted key: value})] for every combination of the grid's values."""
    if not grid:
        return [("", {})]
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
    path = Path(base).expanduser()
    if not path.is_absolute() and (bench_path.parent / path).is_file():
        path = bench_path.parent / path  # relative to the bench file, else to the working folder
    data, base_lines = read_yaml(path)
    return data, str(path), base_lines


def _plan_bench_file(path: Path, data: dict, lines: dict[str, int], overrides: list[str],
                     test: SourceConfig | None) -> tuple[list[BenchRun], str | None]:
    spec = bench_spec(data, path, lines)
    base, base_name, base_lines = _load_base(spec.plain_base(), path, lines)
    if spec.data is not None:
        if spec.data.test is not None and test is None:
            test = spec.data.test
        # The bench's data replaces the base's; its lines are in another file.
        base = {**base, "data": spec.plain_data()}
        base_lines = {k: v for k, v in base_lines.items() if not k.startswith("data")}
    grid = _grid(config_to_dict(spec)["grid"])  # plain lists and dicts, as JSON writes them
    planned = []
    for index, entry in enumerate(spec.runs or (RunSpec("base"),)):
        where = f"{path}:{lines.get(f'runs.{index}', lines.get('runs', 1))}"
        name = entry.name
        for suffix, grid_overrides in grid:
            texts = _override_texts({**config_to_dict(entry)["overrides"], **grid_overrides})
            texts += _strategy_overrides(_cli_keys(overrides)) + list(overrides)
            try:
                config = config_from_dict(base, texts, base_name, base_lines)
            except ConfigError as e:
                raise ConfigError(f"{where}: run '{name}{suffix}': {e}") from e
            planned.append((name + suffix, name, config))
    if test is None:
        test = _default_test([config for _, _, config in planned], str(path))
    runs = [BenchRun(name, group, config, test) for name, group, config in planned]
    return runs, spec.out_dir


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
    read = {path: read_yaml(path) for path in paths}
    headers = {path: data for path, (data, _) in read.items()}
    bench_files = [path for path, data in headers.items() if is_bench_file(data)]
    file_out = None
    if bench_files:
        if len(paths) > 1:
            raise ConfigError(f"{bench_files[0]}: a bench file (with runs/grid/base) must be the only "
                              f"CONFIG; list the train configs in its runs instead")
        runs, file_out = _plan_bench_file(paths[0], *read[paths[0]], overrides, test)
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
