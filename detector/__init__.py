"""detector: transfer learning for object detection.

Public API: build_detector, read_dataset, fit, evaluate, load_checkpoint.
"""

__version__ = "0.1.0"

__all__ = ["build_detector", "read_dataset", "fit", "evaluate", "load_checkpoint"]

_API = {
    "build_detector": "detector.models.registry",
    "read_dataset": "detector.data.readers",
    "fit": "detector.train.engine",
    "evaluate": "detector.evaluation.coco",
    "load_checkpoint": "detector.checkpoint",
    "advise": "detector.advise",
}


def __getattr__(name):
    # Imported on use: `import detector` stays fast and the CLI starts quickly.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
