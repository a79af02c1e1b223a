"""The ultralytics adapter's export plan (detector.export.plan): what its ONNX graph holds.

Graph input: a letterboxed batch [B,C,H,W] float 0..1 (B, H, W dynamic; H, W multiples of the
largest stride), as `letterbox_batch` makes it. Graph output, by default the head's decoded
predictions before NMS, exactly what the module computes in eval mode:

    predictions [B, 4+K, A]: cx, cy, w, h in pixels of the batch, then K class probabilities
    (NMS-free heads, YOLOv10 / YOLO26: [B, D, 6] x1, y1, x2, y2, score, class)

With `nms`, GraphNMS follows inside the graph (outputs batch_index, boxes, scores, labels; see
detector/export/nms.py). Letterboxing, and mapping boxes back to each input image, stay in Python.
"""

from __future__ import annotations

import torch
from torch import nn

from detector.boxes import cxcywh_to_xyxy
from detector.export.nms import GraphNMS, split_by_image
from detector.export.plan import ExportPlan


class _Predictions(nn.Module):
    """DetectionModel -> its decoded predictions alone (ultralytics returns (y, raw) in eval)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        output = self.model(batch)
        return output[0] if isinstance(output, (tuple, list)) else output


class _WithNMS(nn.Module):
    def __init__(self, predictions: nn.Module, nms: GraphNMS):
        super().__init__()
        self.predictions, self.nms = predictions, nms

    def forward(self, batch: torch.Tensor):
        output = self.predictions(batch)  # [B, 4+K, A]
        boxes = cxcywh_to_xyxy(output[:, :4].transpose(1, 2))
        return self.nms(boxes, output[:, 4:].transpose(1, 2))


def export_plan(detector, nms: bool = False) -> ExportPlan:
    """ExportPlan of a YOLODetector (see the module docstring)."""
    from detector.models.letterbox import letterbox_batch, unletterbox

    fused = detector.for_inference()
    head = fused.model.model[-1]
    head.dynamic = True  # anchors from each input's own shape, not cached from the example's
    network: nn.Module = _Predictions(fused.model).eval()
    graph_nms = nms and not head.end2end
    if graph_nms:
        network = _WithNMS(network, GraphNMS(detector.conf_threshold, detector.iou_threshold,
                                             detector.max_detections)).eval()
        names = ("batch_index", "boxes", "scores", "labels")
        axes = {name: {0: "detections"} for name in names}
    else:
        names = ("predictions",)
        axes = {"predictions": {0: "batch", 1 if head.end2end else 2: "anchors"}}
    notes = ["NMS-free head: the graph's output is already the final detections"] \
        if nms and head.end2end else []
    size, stride = detector.image_size, detector.stride

    def prepare(images):
        batch, placements = letterbox_batch(images, size, stride)
        return [(range(len(images)), batch, (placements, images))]

    def finish(outputs, context):
        placements, images = context
        if graph_nms:
            found = split_by_image(*outputs, count=len(images))
        else:
            found = [detector._select(prediction) for prediction in outputs[0]]
        return [unletterbox(boxes, scores, labels, placement, image)
                for (boxes, scores, labels), placement, image in zip(found, placements, images)]

    example = torch.rand(2, detector.in_channels, size, size)
    return ExportPlan(network, names, {"images": {0: "batch", 2: "height", 3: "width"}, **axes},
                      True, example, prepare, finish, graph_nms, notes)
