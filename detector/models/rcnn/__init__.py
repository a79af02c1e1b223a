"""Faster R-CNN family (torchvision): importing this package registers its archs.

adapter.py builds the network behind the Detector contract, weights.py loads pretrained
weights into it, export.py says how it is exported.
"""

from detector.models.rcnn.adapter import RCNNDetector

__all__ = ["RCNNDetector"]
