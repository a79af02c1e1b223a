"""detector: transfer learning for object detection.

Public API (each imported on first use, so `import detector` stays fast):

    >>> import detector
    >>> detector.list_models("yolov5")  # doctest: +SKIP
    ['yolov5_classic', 'yolov5n']
    >>> model = detector.build_detector("yolov8n", ["WBC"])  # doctest: +SKIP
    >>> model = detector.load_model("yolov5n.pt", class_names=["person"], class_map="auto")  # doctest: +SKIP
    >>> records = detector.read_dataset("bccd", split="train")  # doctest: +SKIP
    >>> config = detector.load_config("configs/yolo_custom.yaml", ["train.epochs=3"])  # doctest: +SKIP
    >>> result = detector.train_from_config(config)         # doctest: +SKIP
    >>> detector.fit(model, train_data, val_data, out_dir="runs/x", epochs=3)  # doctest: +SKIP
    >>> print(detector.evaluate(model, records).table())    # doctest: +SKIP
    >>> state = detector.load_checkpoint("runs/x/best.pt")  # doctest: +SKIP
    >>> advice = detector.advise("bccd")                     # doctest: +SKIP

Each name's own docstring says more: `help(detector.fit)`.
"""

__version__ = "0.1.0"

_API = {
    "build_detector": "detector.models.registry",
    "list_models": "detector.models.registry",
    "load_model": "detector.models.loading",
    "read_dataset": "detector.data.readers",
    "load_config": "detector.config",
    "train_from_config": "detector.recipe",
    "fit": "detector.train.engine",
    "evaluate": "detector.evaluation.coco",
    "load_checkpoint": "detector.checkpoint",
    "advise": "detector.advisor",
}

__all__ = list(_API)


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
