"""Evaluation plots: PR curves, per-class AP bars, training curves from metrics.csv."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.evaluation.metrics import Metrics
from detector.evaluation.report import (
    plot_class_ap,
    plot_metrics,
    plot_pr_curves,
    plot_training_curves,
    read_metrics_csv,
)


def read_png(path):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return image


def drawn_pixels(image) -> int:
    """Pixels that are neither white nor grey: the coloured lines and bars."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return int(((abs(b - g) > 40) | (abs(g - r) > 40) | (abs(b - r) > 40)).sum())


def test_pr_curves_draw_each_class(tmp_path):
    recall = np.linspace(0, 1, 101)
    curves = {"cat": (recall, np.clip(1.0 - recall ** 2, 0, 1)),
              "dog": (recall, np.where(recall < 0.5, 0.8, np.nan))}
    path = plot_pr_curves(curves, tmp_path / "pr.png")
    with_curves = drawn_pixels(read_png(path))
    empty = plot_pr_curves({"none": (recall, np.full(101, np.nan))}, tmp_path / "empty.png")
    assert with_curves > 500 and drawn_pixels(read_png(empty)) < with_curves / 10


def test_class_ap_bars_grow_with_ap(tmp_path):
    low = plot_class_ap({"a": {"AP": 0.05, "AP50": 0.1}, "b": {"AP": float("nan"), "AP50": None}},
                        tmp_path / "low.png")
    high = plot_class_ap({"a": {"AP": 0.9, "AP50": 1.0}, "b": {"AP": 0.8, "AP50": 0.9}},
                         tmp_path / "sub" / "high.png")
    assert high.parent.name == "sub"
    assert drawn_pixels(read_png(high)) > 3 * drawn_pixels(read_png(low))


def test_training_curves_from_metrics_csv(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,stage,loss,loss_box,loss_cls,lr,AP,AP50\n"
                        "1,1,2.0,1.2,0.8,0.01,,\n"
                        "2,1,1.5,0.9,0.6,0.01,0.2,0.4\n"
                        "3,1,1.1,0.6,0.5,0.005,0.3,0.55\n")
    rows = read_metrics_csv(csv_path)
    assert rows[0]["AP"] is None and rows[2]["AP50"] == 0.55
    image = read_png(plot_training_curves(csv_path, tmp_path / "curves.png"))
    assert image.shape[1] == 1000 and drawn_pixels(image) > 300


def test_training_curves_refuse_other_csv(tmp_path):
    csv_path = tmp_path / "other.csv"
    csv_path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="epoch"):
        plot_training_curves(csv_path, tmp_path / "x.png")


def test_plot_metrics_writes_both_files(tmp_path):
    precision = np.full((10, 101, 2, 4, 3), -1.0)
    precision[:, :, 0, 0, -1] = np.linspace(1, 0.2, 101)
    metrics = Metrics(stats={}, per_class={"a": {"AP": 0.6, "AP50": 0.6},
                                           "b": {"AP": float("nan"), "AP50": float("nan")}},
                      class_names=["a", "b"], precision=precision,
                      recall_thresholds=np.linspace(0, 1, 101),
                      iou_thresholds=np.linspace(0.5, 0.95, 10))
    written = plot_metrics(metrics, tmp_path)
    assert [p.name for p in written] == ["pr_curves.png", "class_ap.png"]
    assert all(drawn_pixels(read_png(p)) > 100 for p in written)
