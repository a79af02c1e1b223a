"""COCO evaluation: predictions in the dataset's own ids, pycocotools or faster-coco-eval, and
the numbers, tables and plots that come out of it."""

from detector.evaluation.coco import (
    BACKENDS,
    evaluate,
    evaluate_predictions,
    load_results,
    predictions_to_coco,
    records_to_coco,
)
from detector.evaluation.metrics import STAT_NAMES, Metrics

__all__ = ["BACKENDS", "STAT_NAMES", "Metrics", "evaluate", "evaluate_predictions",
           "load_results", "predictions_to_coco", "records_to_coco"]
