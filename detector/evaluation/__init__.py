"""COCO evaluation: the ground truth (a COCO source's own json, or built from records),
results in the dataset's own ids, the evaluators (hotcoco, pycocotools, faster-coco-eval), and
the numbers, tables and plots that come out of it.

Names are imported on first use, so that evaluating two json files (evaluation/files.py)
imports no torch and no data layer.
"""

from __future__ import annotations

import importlib

_API = {
    "BACKENDS": "detector.evaluation.backends",
    "DEFAULT_BACKEND": "detector.evaluation.backends",
    "STAT_NAMES": "detector.evaluation.metrics",
    "Metrics": "detector.evaluation.metrics",
    "evaluate": "detector.evaluation.coco",
    "evaluate_predictions": "detector.evaluation.coco",
    "predictions_to_coco": "detector.evaluation.coco",
    "evaluate_files": "detector.evaluation.files",
    "load_results": "detector.evaluation.results",
    "GroundTruth": "detector.evaluation.truth",
    "records_to_coco": "detector.evaluation.truth",
    "truth_from_json": "detector.evaluation.truth",
    "truth_from_records": "detector.evaluation.truth",
}

__all__ = list(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'detector.evaluation' has no attribute {name!r}")
