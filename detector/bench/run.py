"""Run a planned bench (detector.bench.plan): train and test each run, reuse finished ones.

`run_bench(plan)` goes through `plan.runs`: a run whose results.json carries its results hash is
reused; one with the same training config and a last.pt is resumed; any other is trained with
the engine's `fit` and its best checkpoint scored on the bench's test split
(`train_and_test`). Returns one results dict per run, as written to <run>/results.json.

Every file the bench writes goes through the write guard (detector/outputs.py), checked for
every run before the first one trains: nothing inside the data sets, the bench file or its
base config, nothing over a file the toolkit did not write unless `overwrite`. A run's own
files (listed in its folder's .detector-outputs) are reused or replaced as before.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import yaml

from detector.bench.plan import BenchPlan, BenchRun, config_hash
from detector.bench.report import REPORT_FILES
from detector.config import Config
from detector.errors import ConfigError
from detector.outputs import check_outputs, claim_outputs, write_atomically
from detector.run_folder import RUN_FILES
from detector.train.learned_nothing import learned_nothing

# what train_and_test writes into a run folder beside `fit`'s files
RESULT_FILES = ("results.json", "test_predictions.json", "test/pr_curves.png", "test/class_ap.png")


def read_results(run_dir: Path, results_hash: str) -> dict | None:
    """The finished run's results, or None when absent, unreadable or for another config."""
    path = Path(run_dir) / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("results_hash") != results_hash:
        return None
    return results


def _can_resume(run_dir: Path, train_hash: str) -> bool:
    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return (run_dir / "last.pt").is_file() and isinstance(saved, dict) and config_hash(saved) == train_hash


def _write_json(path: Path, data: dict) -> None:
    write_atomically(path, json.dumps(data, indent=2))


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None  # COCO's -1: no ground truth


def describe_strategy(config: Config) -> str:
    """'finetune_top', or stages as '1:head+2:head,neck' (epochs:parts)."""
    train = config.train
    if train.stages:
        return "+".join(f"{s.epochs}:{','.join(s.train)}" for s in train.stages)
    return train.preset or "finetune_all"


def describe_init(config: Config) -> str:
    model = config.model
    if model.weights:
        return Path(model.weights).name
    if model.backbone_weights:
        return f"backbone {Path(model.backbone_weights).name}"
    return "scratch"


def _split_inputs(source, modalities) -> tuple[list[Path], list[Path]]:
    from detector.data.inputs import input_paths
    from detector.recipe import read_split

    return input_paths(read_split(source, modalities), source.source)


def bench_inputs(plan: BenchPlan) -> tuple[list[Path], list[Path]]:
    """(files, folders) the bench reads: its config files, weights files and every data split
    of every run (each distinct split read once)."""
    files, folders, seen = list(plan.files), set(), set()
    for run in plan.runs:
        config = run.config
        splits = [(s, s.modalities or config.data.modalities) for s in (config.data.train,
                                                                          config.data.val) if s]
        splits.append((run.test, run.test.modalities or config.data.modalities))
        for source, modalities in splits:
            if (source, modalities) not in seen:
                seen.add((source, modalities))
                split_files, split_folders = _split_inputs(source, modalities)
                files += split_files
                folders.update(split_folders)
        if config.model.weights and Path(config.model.weights).is_file():
            files.append(Path(config.model.weights))
    return files, sorted(folders)


def check_bench_outputs(plan: BenchPlan, inputs, overwrite: bool = False) -> None:
    """The write guard over the bench folder's report and every run folder still to train,
    before anything is written. Raises OutputError naming the flag or key and the file."""
    files, folders = inputs
    guard = dict(flag=plan.out_flag, reads=files, read_folders=folders, overwrite=overwrite)
    check_outputs(plan.out_dir, REPORT_FILES, **guard)
    for run in plan.runs:
        run_dir = plan.out_dir / run.name
        if read_results(run_dir, run.results_hash) is None:
            check_outputs(run_dir, (*RUN_FILES, *RESULT_FILES), **guard)


def train_and_test(run: BenchRun, run_dir: Path, show_progress: bool = True,
                   overwrite: bool = False, flag: str = "--out", inputs=((), ())) -> dict:
    """Train `run` into `run_dir` (resuming an interrupted run of the same config), score its
    best checkpoint on the test split, write run_dir/results.json and return its contents.
    The run folder is claimed (detector/run_folder.start_run) only once the run can start;
    `inputs` (files, folders) are what its outputs must stay out of beyond its own data."""
    from detector.checkpoint import load_checkpoint
    from detector.evaluation.coco import evaluate
    from detector.evaluation.report import plot_metrics
    from detector.models.loading import detector_from_checkpoint
    from detector.recipe import prepare_run, read_split
    from detector.run_folder import discard_unstarted_run, start_run
    from detector.train import engine

    config = run.config
    run_dir = Path(run_dir)
    test_records = read_split(run.test, run.test.modalities or config.data.modalities)
    resume = _can_resume(run_dir, run.train_hash)
    prepared = prepare_run(config, run_dir, resume=resume)
    if list(test_records.class_names) != prepared.class_names:
        raise ConfigError(f"data.test: {run.test.source} has classes {test_records.class_names}, "
                          f"the training data {prepared.class_names}")
    start_run(prepared.detector, prepared.train_data, prepared.val_data, config, run_dir,
              resume=resume, overwrite=overwrite, flag=flag, extra_files=RESULT_FILES,
              reads=inputs[0], read_folders=inputs[1])
    (run_dir / "results.json").unlink(missing_ok=True)
    try:
        outcome = prepared.fit(show_progress=show_progress)
    except BaseException:
        if not resume:
            discard_unstarted_run(run_dir, RESULT_FILES)
        raise
    train_data = prepared.train_data
    checkpoint = run_dir / ("best.pt" if outcome["best_epoch"] is not None else "last.pt")
    state = load_checkpoint(checkpoint)
    model = detector_from_checkpoint(state, prefer_ema=True)
    device = engine.resolve_device(config.train.device)
    # The records, not a dataset: the evaluator feeds original images, the detector resizes.
    metrics = evaluate(model.to(device).eval(), test_records, backend=config.train.eval_backend,
                       batch_size=config.train.batch_size, device=device, progress=show_progress,
                       results_path=run_dir / "test_predictions.json")
    plot_metrics(metrics, run_dir / "test")  # the run's own PR curves and per-class AP
    history = outcome["history"]
    warnings = list(outcome.get("warnings", []))
    tested = learned_nothing(metrics, len(history), config.train.warmup_epochs, split="test",
                             where=f"{run.name}: test")
    if tested:
        print(f"warning: {tested}", file=sys.stderr)
        warnings.append(tested)
    train_s = sum(float(row["epoch_s"]) for row in history)
    results = {
        "name": run.name, "group": run.group, "results_hash": run.results_hash,
        "arch": state["arch"], "init": describe_init(config), "strategy": describe_strategy(config),
        "seed": config.train.seed, "epochs": len(history), "best_epoch": outcome["best_epoch"],
        "checkpoint": checkpoint.name, "test": f"{run.test.source}:{run.test.split or ''}",
        "test_images": len(test_records),
        **{name: _number(value) for name, value in metrics.stats.items()},
        "per_class": {name: {k: _number(v) for k, v in scores.items()}
                      for name, scores in metrics.per_class.items()},
        "train_s": train_s,
        "train_images_per_s": len(train_data) * len(history) / train_s if train_s > 0 else None,
        "eval_images_per_s": _number(metrics.images_per_s),
        "params": sum(p.numel() for p in model.parameters()),
        "warnings": warnings,  # a run that learned nothing (train/learned_nothing.py)
    }
    _write_json(run_dir / "results.json", results)
    return results


def run_bench(plan: BenchPlan, show_progress: bool = True, log=None,
              overwrite: bool = False) -> list[dict]:
    """Train and test every run of `plan` not finished before, in order; `log` gets one line
    per run (default: printed above the progress bars). Returns each run's results (as in its
    results.json), in plan order, with the report's files claimed in plan.out_dir
    (report.write_report writes them). `overwrite` lets the bench replace files in its
    folders that the toolkit did not write; never its inputs."""
    from tqdm import tqdm

    log = log or tqdm.write
    inputs = bench_inputs(plan)
    check_bench_outputs(plan, inputs, overwrite)
    existed = plan.out_dir.exists()
    try:
        results = _run_all(plan, show_progress, log, overwrite, inputs)
    except BaseException:
        if not existed and plan.out_dir.is_dir() and not any(plan.out_dir.iterdir()):
            plan.out_dir.rmdir()  # the first run could not start: leave no empty bench folder
        raise
    claim_outputs(plan.out_dir, REPORT_FILES, flag=plan.out_flag, reads=inputs[0],
                  read_folders=inputs[1], overwrite=overwrite)
    return results


def _run_all(plan: BenchPlan, show_progress: bool, log, overwrite: bool, inputs) -> list[dict]:
    from tqdm import tqdm

    results = []
    total = len(plan.runs)
    bar = tqdm(plan.runs, desc="bench", unit="run", disable=not show_progress, dynamic_ncols=True)
    for index, run in enumerate(bar, 1):
        run_dir = plan.out_dir / run.name
        finished = read_results(run_dir, run.results_hash)
        if finished is not None:
            log(f"[{index}/{total}] {run.name}: finished before, reused "
                f"(mAP50-95 {_shown(finished.get('AP'))}, mAP50 {_shown(finished.get('AP50'))})")
            results.append(finished)
            continue
        log(f"[{index}/{total}] {run.name}: training {run.config.model.arch or run.config.model.weights}"
            f" ({describe_init(run.config)}, {describe_strategy(run.config)}) into {run_dir}")
        finished = train_and_test(run, run_dir, show_progress=show_progress, overwrite=overwrite,
                                  flag=plan.out_flag, inputs=inputs)
        log(f"[{index}/{total}] {run.name}: mAP50-95 {_shown(finished['AP'])}, "
            f"mAP50 {_shown(finished['AP50'])}, {finished['train_s']:.1f} s training")
        results.append(finished)
    bar.close()
    return results


def _shown(value) -> str:
    return "-" if value is None else f"{value:.4f}"
