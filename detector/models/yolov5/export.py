"""The classic YOLOv5 adapter's export plan (detector.export.plan): what its ONNX graph holds.

Graph input: a letterboxed batch [B,C,H,W] float 0..1 (B, H, W dynamic; H, W multiples of the
stride), as `YOLOv5Detector._eval_batches` makes it (one batch per letterboxed shape). Graph
output, by default the head's decoded predictions before NMS, as YOLOv5's own export gives them:

    predictions [B, N, 5+K]: cx, cy, w, h in pixels of the batch, objectness, K class
    probabilities (N = anchors x cells over the three levels)

With `nms`, GraphNMS follows inside the graph on score = objectness x class probability (every
class above the threshold with multi_label, else the best class only), with outputs
batch_index, boxes, scores, labels (detector/export/nms.py). Letterboxing and mapping boxes back
to each input image stay in Python.
"""

from __future__ import annotations

import torch
from torch import nn

from detector.boxes import cxcywh_to_xyxy
from detector.export.nms import GraphNMS, split_by_image
from detector.export.plan import ExportPlan


class _Predictions(nn.Module):
    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.detector.model[-1].decode(self.detector.raw_outputs(batch))


class _WithNMS(nn.Module):
    def __init__(self, predictions: nn.Module, nms: GraphNMS, multi_label: bool):
        super().__init__()
        self.predictions, self.nms, self.multi_label = predictions, nms, multi_label

    def forward(self, batch: torch.Tensor):
        decoded = self.predictions(batch)  # [B, N, 5+K]
        scores = decoded[..., 5:] * decoded[..., 4:5]
        if not self.multi_label:  # only the best class of each box competes
            best, label = scores.max(-1, keepdim=True)
            scores = torch.zeros_like(scores).scatter(-1, label, best)
        return self.nms(cxcywh_to_xyxy(decoded[..., :4]), scores)


def export_plan(detector, nms: bool = False) -> ExportPlan:
    """ExportPlan of a YOLOv5Detector (see the module docstring)."""
    from detector.models.letterbox import unletterbox
    from detector.models.yolov5.head import non_max_suppression

    fused = detector.for_inference()
    network: nn.Module = _Predictions(fused).eval()
    if nms:
        network = _WithNMS(network, GraphNMS(detector.conf_threshold, detector.iou_threshold,
                                             detector.max_detections), detector.multi_label).eval()
        names = ("batch_index", "boxes", "scores", "labels")
        axes = {name: {0: "detections"} for name in names}
    else:
        names = ("predictions",)
        axes = {"predictions": {0: "batch", 1: "anchors"}}

    def finish(outputs, placements):
        if nms:
            found = [dict(zip(("boxes", "scores", "labels"), rows))
                     for rows in split_by_image(*outputs, count=len(placements))]
        else:
            found = non_max_suppression(outputs[0], detector.conf_threshold,
                                        detector.iou_threshold, detector.max_detections,
                                        detector.multi_label)
        return [unletterbox(rows["boxes"], rows["scores"], rows["labels"], (gain, *pad), image)
                for rows, (gain, pad, image) in zip(found, placements)]

    (_, example, _), = detector._eval_batches([torch.rand(detector.in_channels, 200, 300)] * 2)
    return ExportPlan(network, names, {"images": {0: "batch", 2: "height", 3: "width"}, **axes},
                      True, example, detector._eval_batches, finish, nms)
