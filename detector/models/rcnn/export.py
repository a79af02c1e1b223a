"""The Faster R-CNN adapter's export plan (detector.export.plan): what its ONNX graph holds.

Graph input: one image [1,C,H,W] float 0..1 already resized by torchvision's rule (shorter side
to min_size, longer side at most max_size; H, W dynamic). The graph normalises it, pads it to a
multiple of 32 and runs the backbone, RPN and RoI heads with their NMS (torchvision's ONNX
support); outputs, in pixels of the resized image:

    boxes [N,4] xyxy, scores [N], labels [N] int64 0-based

The resize stays in Python (torch's own interpolation, then boxes scaled back with torchvision's
resize_boxes): ONNX Resize samples a downscaled image up to 7e-5 differently and rounds some
upscaled sizes one pixel smaller, which moves a detector's proposals. The batch is fixed at one
image: torchvision's heads loop over the images of a batch in Python, and a traced loop is
unrolled for the example's batch size. Runners feed the images one by one.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import resize_boxes

from detector.export.plan import ExportPlan


class _ResizedImage(nn.Module):
    """torchvision's GeneralizedRCNN in eval mode from the resize on, for one image."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor):
        model = self.model
        image = model.transform.normalize(batch[0])
        images = model.transform.batch_images([image], size_divisible=model.transform.size_divisible)
        sizes = [(image.shape[-2], image.shape[-1])]
        features = model.backbone(images)
        proposals, _ = model.rpn(ImageList(images, sizes), features)
        found = model.roi_heads(features, proposals, sizes)[0][0]
        return found["boxes"], found["scores"], found["labels"] - 1  # background is label 0


def export_plan(detector, nms: bool = False) -> ExportPlan:
    """ExportPlan of an RCNNDetector; `nms` changes nothing (the graph always holds the NMS)."""
    transform = detector.model.transform

    def prepare(images):
        prepared = []
        for index, image in enumerate(images):
            resized = transform.resize(image, None)[0]
            prepared.append(([index], resized[None], (resized.shape[-2:], image.shape[-2:])))
        return prepared

    def finish(outputs, sizes):
        boxes, scores, labels = outputs
        return [{"boxes": resize_boxes(boxes, *sizes), "scores": scores, "labels": labels.long()}]

    names = ("boxes", "scores", "labels")
    axes = {"images": {2: "height", 3: "width"}, **{name: {0: "detections"} for name in names}}
    example = transform.resize(torch.rand(detector.in_channels, 300, 400), None)[0][None]
    return ExportPlan(_ResizedImage(detector.model).eval(), names, axes, False, example, prepare,
                      finish, graph_nms=True)
