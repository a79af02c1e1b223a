"""Run a planned bench (detector.bench.plan): train and test each run, reuse finished ones.

`run_bench(plan)` goes through `plan.runs`: a run whose results.json carries its results hash is
reused; one with the same training config and a last.pt is resumed; any other is trained with
the engine's `fit` and its best checkpoint scored on the bench's test split
(`train_and_test`). Returns one results dict per run, as written to <run>/results.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from detector.bench.plan import BenchPlan, BenchRun, config_hash
from detector.config import Config
from detector.errors import ConfigError
from detector.outputs import write_atomically


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


def train_and_test(run: BenchRun, run_dir: Path, show_progress: bool = True) -> dict:
    """Train `run` into `run_dir` (resuming an interrupted run of the same config), score its
    best checkpoint on the test split, write run_dir/results.json and return its contents."""
    from detector.checkpoint import load_checkpoint
    from detector.evaluation.coco import evaluate
    from detector.evaluation.report import plot_metrics
    from detector.models.loading import detector_from_checkpoint
    from detector.recipe import prepare_run, read_split
    from detector.train import engine

    config = run.config
    run_dir = Path(run_dir)
    test_records = read_split(run.test, run.test.modalities or config.data.modalities)
    resume = _can_resume(run_dir, run.train_hash)
    prepared = prepare_run(config, run_dir, resume=resume)
    if list(test_records.class_names) != prepared.class_names:
        raise ConfigError(f"data.test: {run.test.source} has classes {test_records.class_names}, "
                          f"the training data {prepared.class_names}")
    (run_dir / "results.json").unlink(missing_ok=True)
    outcome = prepared.fit(show_progress=show_progress)
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
    }
    _write_json(run_dir / "results.json", results)
    return results


def run_bench(plan: BenchPlan, show_progress: bool = True, log=None) -> list[dict]:
    """Train and test every run of `plan` not finished before, in order; `log` gets one line
    per run (default: printed above the progress bars). Returns each run's results (as in its
    results.json), in plan order."""
    from tqdm import tqdm

    log = log or tqdm.write
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
        run_dir.mkdir(parents=True, exist_ok=True)
        finished = train_and_test(run, run_dir, show_progress=show_progress)
        log(f"[{index}/{total}] {run.name}: mAP50-95 {_shown(finished['AP'])}, "
            f"mAP50 {_shown(finished['AP50'])}, {finished['train_s']:.1f} s training")
        results.append(finished)
    bar.close()
    return results


def _shown(value) -> str:
    return "-" if value is None else f"{value:.4f}"
