"""PNG plots of evaluation results: PR curves per class, per-class AP bars, loss and mAP curves.

Each function takes plain data (arrays, dicts, a csv path) and an output path, and returns the
path it wrote. Figures are drawn with matplotlib's object API on the Agg canvas: no pyplot global
state, no display needed.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

MAX_LEGEND = 20  # beyond this many classes, coloured PR curves and a legend hide the plot


def _figure(width: float = 7.0, height: float = 5.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, out_path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_path)
    return out_path


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_path,
                   title: str = "precision-recall at IoU 0.5") -> Path:
    """One PR curve per class and, bold, their mean over the classes with ground truth.

    curves: {class name: (recall [R], precision [R])}, precision NaN where undefined (a class
    without ground truth draws nothing). Up to MAX_LEGEND classes get a colour and a legend entry
    with their AP (mean precision over the recall points, as COCO computes it); beyond that they
    are thin grey lines under the mean."""
    figure = _figure()
    axes = figure.add_subplot()
    defined = {name: (np.asarray(recall, dtype=np.float64), np.asarray(precision, np.float64))
               for name, (recall, precision) in curves.items()
               if not np.isnan(np.asarray(precision, dtype=np.float64)).all()}
    many = len(defined) > MAX_LEGEND
    for name, (recall, precision) in defined.items():
        if many:
            axes.plot(recall, precision, linewidth=0.6, color="grey", alpha=0.5)
        else:
            axes.plot(recall, precision, linewidth=1.2,
                      label=f"{name} {np.nanmean(precision):.3f}")
    if defined:
        recall = next(iter(defined.values()))[0]
        mean = np.nanmean(np.stack([precision for _, precision in defined.values()]), axis=0)
        axes.plot(recall, mean, linewidth=2.5, color="tab:blue",
                  label=f"all classes {np.nanmean(mean):.3f}")
        axes.legend(fontsize="small", loc="lower left")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _save(figure, out_path)


def plot_class_ap(per_class: dict[str, dict[str, float]], out_path,
                  title: str = "AP per class") -> Path:
    """Horizontal bars of AP50-95 and AP50 per class. per_class: {name: {"AP", "AP50"}};
    a missing or NaN value (class without ground truth) draws no bar."""
    names = list(per_class)
    figure = _figure(7.0, max(2.5, 0.28 * len(names) + 1.2))
    axes = figure.add_subplot()
    positions = np.arange(len(names))

    def values(key):
        out = []
        for name in names:
            value = per_class[name].get(key)
            out.append(0.0 if value is None or math.isnan(value) else float(value))
        return out

    axes.barh(positions - 0.2, values("AP"), height=0.4, label="AP50-95")
    axes.barh(positions + 0.2, values("AP50"), height=0.4, label="AP50")
    axes.set_yticks(positions, names, fontsize="small")
    axes.set_ylim(len(names) - 0.5, -0.5)  # first class on top, no empty margin
    axes.set_xlim(0, 1)
    axes.set_xlabel("AP")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    return _save(figure, out_path)


TEXT_COLUMNS = ("warning",)  # metrics.csv columns that hold words, not numbers


def read_metrics_csv(path) -> list[dict]:
    """Rows of a run's metrics.csv with numbers as floats (empty cells as None); the text
    columns (a learned-nothing `warning`) stay strings."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({key: (None if value in ("", None) else
                               value if key in TEXT_COLUMNS else float(value))
                         for key, value in row.items()})
    return rows


def plot_training_curves(metrics_csv, out_path) -> Path:
    """Loss terms (left) and validation mAP50-95 / mAP50 (right) per epoch from a metrics.csv
    with columns epoch, loss, loss_*, AP, AP50 (AP empty on epochs without evaluation)."""
    rows = read_metrics_csv(metrics_csv)
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{metrics_csv}: expected a metrics.csv with an 'epoch' column")
    figure = _figure(10.0, 4.0)
    losses, maps = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    epochs = [row["epoch"] for row in rows]
    for key in [k for k in rows[0] if k == "loss" or k.startswith("loss_")]:
        losses.plot(epochs, [row[key] for row in rows], marker="o", markersize=3, label=key)
    losses.set_xlabel("epoch")
    losses.set_ylabel("training loss")
    losses.grid(alpha=0.3)
    if losses.lines:
        losses.legend(fontsize="small")
    for key, label in (("AP", "mAP50-95"), ("AP50", "mAP50")):
        points = [(row["epoch"], row[key]) for row in rows if row.get(key) is not None]
        if points:
            maps.plot(*zip(*points), marker="o", markersize=3, label=label)
    maps.set_xlabel("epoch")
    maps.set_ylabel("validation mAP")
    maps.set_ylim(0, 1)
    maps.grid(alpha=0.3)
    if maps.lines:
        maps.legend(fontsize="small")
    return _save(figure, out_path)


def plot_metrics(metrics, out_dir) -> list[Path]:
    """pr_curves.png (IoU 0.5) and class_ap.png of a `Metrics` into out_dir."""
    out_dir = Path(out_dir)
    curves = {name: metrics.pr_curve(label) for label, name in enumerate(metrics.class_names)}
    return [plot_pr_curves(curves, out_dir / "pr_curves.png"),
            plot_class_ap(metrics.per_class, out_dir / "class_ap.png")]
