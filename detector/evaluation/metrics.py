"""`Metrics`: what one COCO evaluation produced, as plain data.

- stats: the 12 COCO numbers by name (STAT_NAMES), -1 where COCO has nothing to measure
  (e.g. APs when no ground-truth box is small), as pycocotools reports them
- per_class: {class name: {"AP": mAP50-95, "AP50": AP at IoU 0.5}}, read from the precision
  array (area "all", 100 detections); NaN for a class with no ground-truth box
- precision: COCO's accumulated precision array [T, R, K, A, M] (IoU thresholds, recall
  thresholds, classes in label order, area ranges, max detections), -1 where undefined; kept for
  PR curves
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class Metrics:
    """One evaluation: the 12 COCO stats, per-class AP, speed and the PR data."""

    stats: dict[str, float]
    per_class: dict[str, dict[str, float]]
    class_names: list[str]
    precision: np.ndarray | None = None  # [T, R, K, A, M], classes in label order
    recall_thresholds: np.ndarray | None = None  # [R], 0..1
    iou_thresholds: np.ndarray | None = None  # [T], 0.5..0.95
    instances: dict[str, int] = field(default_factory=dict)  # ground-truth boxes per class
    images_per_s: float | None = None
    num_images: int = 0
    num_predictions: int = 0
    backend: str = ""

    def pr_curve(self, label: int, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(recall [R], precision [R]) of class `label` at IoU threshold `iou`, area "all",
        100 detections; precision is NaN where COCO leaves it undefined."""
        import numpy as np

        if self.precision is None:
            raise ValueError("these metrics hold no precision array")
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        values = self.precision[t, :, label, 0, -1].astype(np.float64)
        values[values < 0] = np.nan
        return np.asarray(self.recall_thresholds, dtype=np.float64), values

    def to_dict(self) -> dict:
        """JSON-ready: the 12 stats by name, per-class AP and AP50 (null for a class with no
        ground truth), instances, images/s and counts."""
        return {
            "stats": {name: float(self.stats[name]) for name in STAT_NAMES},
            "per_class": {name: {key: _finite_or_none(value) for key, value in values.items()}
                          for name, values in self.per_class.items()},
            "instances": dict(self.instances),
            "images_per_s": self.images_per_s,
            "num_images": self.num_images,
            "num_predictions": self.num_predictions,
            "backend": self.backend,
        }

    def table(self) -> str:
        """Two aligned text tables: per-class AP / AP50 (with an "all" row), then the 12 stats."""
        from detector.tables import format_table

        rows = [[name, self.instances.get(name), _finite_or_none(values["AP"]),
                 _finite_or_none(values["AP50"])] for name, values in self.per_class.items()]
        rows.append(["all", sum(self.instances.values()) if self.instances else None,
                     float(self.stats["AP"]), float(self.stats["AP50"])])
        per_class = format_table(["class", "boxes", "AP50-95", "AP50"], rows)
        stats = format_table([name for name in STAT_NAMES],
                             [[float(self.stats[name]) for name in STAT_NAMES]])
        lines = [per_class, "", stats]
        if self.images_per_s is not None:
            lines.append(f"\n{self.num_images} images, {self.images_per_s:.1f} images/s")
        return "\n".join(lines)


def _per_class(precision, class_names: list[str]) -> dict[str, dict[str, float]]:
    """AP (IoU 0.5:0.95) and AP50 of each class, area "all", 100 detections; NaN where the
    class has no ground truth (precision -1 throughout), as COCO leaves it out of the mean."""
    per_class = {}
    for k, name in enumerate(class_names):
        values = precision[:, :, k, 0, -1]
        at_50 = values[0]
        per_class[name] = {
            "AP": float(values[values > -1].mean()) if (values > -1).any() else float("nan"),
            "AP50": float(at_50[at_50 > -1].mean()) if (at_50 > -1).any() else float("nan"),
        }
    return per_class


def to_metrics(evaluation, class_names: list[str], category_ids: list[int],
               instances: dict[str, int], num_predictions: int, backend: str) -> Metrics:
    """`Metrics` of a backend's `Evaluation` (backends.py), with classes in label order:
    class_names[label] has category id category_ids[label] (COCOeval sorts them by id)."""
    import numpy as np

    position = {int(c): k for k, c in enumerate(evaluation.category_ids)}
    precision = np.asarray(evaluation.precision)[:, :, [position[int(c)] for c in category_ids]]
    return Metrics(stats=dict(zip(STAT_NAMES, evaluation.stats)),
                   per_class=_per_class(precision, class_names), class_names=list(class_names),
                   precision=precision,
                   recall_thresholds=np.asarray(evaluation.recall_thresholds),
                   iou_thresholds=np.asarray(evaluation.iou_thresholds),
                   instances=instances, num_images=evaluation.image_count,
                   num_predictions=num_predictions, backend=backend)
