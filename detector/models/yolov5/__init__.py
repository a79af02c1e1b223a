"""Classic (anchor-based) YOLOv5 family: importing this package registers its archs.

adapter.py builds the network behind the Detector contract and imports YOLOv5 checkpoints,
layers.py builds the network from its model yaml, head.py is the anchor head and its NMS,
loss.py the training loss, export.py says how it is exported.
"""

from detector.models.yolov5.adapter import YOLOv5Detector, import_checkpoint

__all__ = ["YOLOv5Detector", "import_checkpoint"]
