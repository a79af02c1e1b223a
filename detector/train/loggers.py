"""Where a run's per-epoch numbers and plots go: `train.loggers: [csv, tensorboard]`.

    loggers = build_loggers(["csv", "tensorboard"], out_dir)
    loggers.log_epoch(history)        # after each epoch: every row so far, the last one is new
    loggers.log_best(metrics, epoch)  # after an evaluation that improved the best mAP
    loggers.close()

A row is the engine's dict {epoch, stage, loss, <loss terms>, lr, images_per_s, epoch_s, AP,
AP50} (AP and AP50 None on epochs without evaluation). `metrics` is a COCO `Metrics`
(detector/evaluation/metrics.py); anything else (an injected evaluate_fn may return only
`.stats`) has no plots to log.

- csv (the default): metrics.csv (every row, rewritten atomically each epoch, so a run killed at
  any moment leaves a whole file), training_curves.png from it, and pr_curves.png /
  class_ap.png of the best evaluation, so those always describe best.pt.
- tensorboard: an events file in the run folder (`tensorboard --logdir runs/` shows one run per
  folder): each numeric column as a scalar per epoch (train/<column>, val/AP, val/AP50) and the
  best evaluation's PR curves and per-class AP as images. Each process start writes a new events
  file (TensorBoard merges them), so a resumed run never rewrites the old one.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np

from detector.errors import ConfigError, suggestion
from detector.outputs import write_atomically

VALIDATION_COLUMNS = ("AP", "AP50")
NOT_SCALARS = ("epoch", "stage")  # the step and a label, not curves


class CsvLogger:
    """metrics.csv, training_curves.png, pr_curves.png and class_ap.png in `out_dir`."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def log_epoch(self, history: list[dict]) -> None:
        from detector.evaluation.report import plot_training_curves

        columns = list(dict.fromkeys(key for row in history for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})
        write_atomically(self.out_dir / "metrics.csv", buffer.getvalue())
        plot_training_curves(self.out_dir / "metrics.csv", self.out_dir / "training_curves.png")

    def log_best(self, metrics, epoch: int) -> None:
        from detector.evaluation.metrics import Metrics
        from detector.evaluation.report import plot_metrics

        if isinstance(metrics, Metrics):
            plot_metrics(metrics, self.out_dir)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """An events file in `out_dir`, opened at the first row (a run that fails before its first
    epoch leaves none behind)."""

    def __init__(self, out_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("train.loggers: 'tensorboard' needs the tensorboard package "
                              "(pip install tensorboard)") from e
        self.out_dir = Path(out_dir)
        self._writer_class = SummaryWriter
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.out_dir))
        return self._writer

    def log_epoch(self, history: list[dict]) -> None:
        row = history[-1]
        for column, value in row.items():
            if column in NOT_SCALARS or not isinstance(value, (int, float)):
                continue  # AP and AP50 are None on epochs without evaluation
            group = "val" if column in VALIDATION_COLUMNS else "train"
            self.writer.add_scalar(f"{group}/{column}", float(value), global_step=row["epoch"])
        self.writer.flush()  # a run killed later still has every finished epoch

    def log_best(self, metrics, epoch: int) -> None:
        from PIL import Image

        from detector.evaluation.metrics import Metrics
        from detector.evaluation.report import plot_metrics

        if not isinstance(metrics, Metrics):
            return
        # The same figures as the csv logger's PNGs, drawn once more into a scratch folder: the
        # run folder may not hold them (loggers: [tensorboard] alone).
        with tempfile.TemporaryDirectory() as scratch:
            for path in plot_metrics(metrics, scratch):
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(f"best/{path.stem}", pixels, global_step=epoch,
                                      dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


LOGGERS = {"csv": CsvLogger, "tensorboard": TensorBoardLogger}


class Loggers:
    """Every chosen logger behind one interface (what the engine calls)."""

    def __init__(self, loggers: list):
        self.loggers = loggers

    def log_epoch(self, history: list[dict]) -> None:
        for logger in self.loggers:
            logger.log_epoch(history)

    def log_best(self, metrics, epoch: int) -> None:
        for logger in self.loggers:
            logger.log_best(metrics, epoch)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def build_loggers(names, out_dir) -> Loggers:
    """The loggers `names` (a subset of LOGGERS, each at most once) writing into `out_dir`."""
    names = list(names)
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"train.loggers: unknown logger {name!r}; "
                              f"{suggestion(name, LOGGERS, 'valid loggers')}")
    if len(set(names)) != len(names):
        raise ConfigError(f"train.loggers: {names} names a logger twice")
    return Loggers([LOGGERS[name](Path(out_dir)) for name in dict.fromkeys(names)])
