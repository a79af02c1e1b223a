"""Ultralytics YOLO family (yolov8/yolo11 and the anchor-free yolov5*u): importing this package
registers its archs.

adapter.py puts the network behind the Detector contract and imports ultralytics checkpoints,
network.py builds ultralytics' network from a model yaml, loss.py is the training loss,
export.py says how it is exported.
"""

from detector.models.ultralytics.adapter import YOLODetector, import_checkpoint

__all__ = ["YOLODetector", "import_checkpoint"]
