"""`Metrics`: what one COCO evaluation produced, as plain data.

- stats: the 12 COCO numbers by name (STAT_NAMES), -1 where COCO has nothing to measure
  (e.g. APs when no ground-truth box is small), as pycocotools reports them
- per_class: {class name: {"AP": mAP50-95, "AP50": AP at IoU 0.5}}, area "all", 100
  detections, read from the precision array (or given by hotcoco when there is none); NaN for
  a class with no ground-truth box
- precision: COCO's accumulated precision array [T, R, K, A, M] (IoU thresholds, recall
  thresholds, classes in label order, area ranges, max detections), -1 where undefined; kept for
  PR curves; None when not asked for (two json files without --plots: no numpy)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where used: the two-json path never loads it
    import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class Metrics:
    """One evaluation: the 12 COCO stats, per-class AP, speed and the PR data.

    - stats, per_class, class_names: as in the module docstring
    - precision [T, R, K, A, M] (classes in label order), recall_thresholds [R] (0..1),
      iou_thresholds [T] (0.5..0.95): numpy arrays, or None when the backend was not asked for
      them (two json files without plots)
    - instances: ground-truth boxes per class; images_per_s: of the prediction loop, or None
    - num_images, num_predictions: evaluated images and results; backend: its name

    A plain class rather than a dataclass: `dataclasses` imports `inspect`, a tenth of the
    whole `detector eval` on two small json files.
    """

    def __init__(self, stats: dict[str, float], per_class: dict[str, dict[str, float]],
                 class_names: list[str], precision=None, recall_thresholds=None,
                 iou_thresholds=None, instances: dict[str, int] | None = None,
                 images_per_s: float | None = None, num_images: int = 0,
                 num_predictions: int = 0, backend: str = ""):
        self.stats = stats
        self.per_class = per_class
        self.class_names = class_names
        self.precision = precision
        self.recall_thresholds = recall_thresholds
        self.iou_thresholds = iou_thresholds
        self.instances = dict(instances or {})
        self.images_per_s = images_per_s
        self.num_images = num_images
        self.num_predictions = num_predictions
        self.backend = backend

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
    class has no ground truth (precision -1 throughout), as COCO leaves it out of the mean.
    One pass over all classes: each mean is over the defined (> -1) entries only."""
    import numpy as np

    values = np.asarray(precision[:, :, :, 0, -1], dtype=np.float64)  # [T, R, K]
    defined = values > -1
    kept = np.where(defined, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 -> NaN: no ground truth
        ap = kept.sum(axis=(0, 1)) / defined.sum(axis=(0, 1))
        ap50 = kept[0].sum(axis=0) / defined[0].sum(axis=0)
    return {name: {"AP": float(ap[k]), "AP50": float(ap50[k])}
            for k, name in enumerate(class_names)}


def to_metrics(evaluation, class_names: list[str], category_ids: list[int],
               instances: dict[str, int], num_predictions: int, backend: str) -> Metrics:
    """`Metrics` of a backend's `Evaluation` (backends.py), with classes in label order:
    class_names[label] has category id category_ids[label] (COCOeval sorts them by id)."""
    metrics = Metrics(stats=dict(zip(STAT_NAMES, evaluation.stats)), per_class={},
                      class_names=list(class_names), instances=instances,
                      num_images=evaluation.image_count, num_predictions=num_predictions,
                      backend=backend)
    if evaluation.precision is None:  # the backend gave per-category AP, AP50 (no numpy)
        metrics.per_class = {name: dict(zip(("AP", "AP50"), evaluation.per_category[int(c)]))
                             for name, c in zip(class_names, category_ids)}
        return metrics
    import numpy as np

    position = {int(c): k for k, c in enumerate(evaluation.category_ids)}
    order = [position[int(c)] for c in category_ids]
    precision = np.asarray(evaluation.precision)
    if order != list(range(precision.shape[2])):  # a copy of ~1M floats only when reordered
        precision = precision[:, :, order]
    metrics.per_class = _per_class(precision, class_names)
    metrics.precision = precision
    metrics.recall_thresholds = np.asarray(evaluation.recall_thresholds)
    metrics.iou_thresholds = np.asarray(evaluation.iou_thresholds)
    return metrics
