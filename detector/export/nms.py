"""NMS inside an exported graph: multi-label, per class, per image, as ONNX NonMaxSuppression.

`GraphNMS(conf, iou, max_detections)` maps boxes [B,N,4] xyxy and class scores [B,N,K] to
detections flattened over the batch:

    batch_index [M] int64, boxes [M,4] xyxy, scores [M], labels [M] int64

sorted by image, then by score (highest first), at most `max_detections` per image. A box is
kept once per class scoring above `conf` (the multi-label rule of ultralytics' and YOLOv5's val)
and suppressed only by boxes of its own class and image with IoU above `iou`.

In ONNX the suppression is one NonMaxSuppression node, which takes the batch and the classes as
they are: no coordinate-offset trick, so no float32 rounding of large offset coordinates. In
PyTorch (tracing, or running the module) the same result comes from torchvision's batched_nms.
What the graph does not do: ultralytics caps the candidates at 30000 before NMS to bound its
time; here every candidate above `conf` goes in (the same detections whenever fewer pass).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression: boxes [B,N,4], scores [B,K,N] -> selected [M,3] (image, class,
    box), ordered by image, class, then score, as onnxruntime returns them."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou: float, conf: float):
        rows = []
        for image in range(boxes.shape[0]):
            label, box = torch.nonzero(scores[image] > conf, as_tuple=True)
            kept = batched_nms(boxes[image, box], scores[image, label, box], label, iou)
            kept = kept[torch.argsort(label[kept], stable=True)]  # class order, score order inside
            per_class = []
            for value in label[kept].unique():
                per_class.append(kept[label[kept] == value][:max_per_class])
            kept = torch.cat(per_class) if per_class else kept
            rows.append(torch.stack((torch.full_like(kept, image), label[kept], box[kept]), 1))
        return torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou: float, conf: float):
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([conf], dtype=torch.float32)),
                    center_point_box_i=0)


class GraphNMS(nn.Module):
    """Multi-label per-class NMS over a batch (see the module docstring)."""

    def __init__(self, conf: float, iou: float, max_detections: int):
        super().__init__()
        self.conf, self.iou, self.max_detections = float(conf), float(iou), int(max_detections)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
        """boxes [B,N,4] xyxy, scores [B,N,K] -> (batch_index, boxes, scores, labels)."""
        selected = _NonMaxSuppression.apply(boxes.float(), scores.float().transpose(1, 2),
                                            self.max_detections, self.iou, self.conf)
        image, label, box = selected[:, 0], selected[:, 1], selected[:, 2]
        kept_boxes = boxes[image, box]
        kept_scores = scores[image, box, label]
        # image first, then the highest score: scores are in 0..1, so 2 * image - score orders both
        order = torch.argsort(image.to(kept_scores.dtype) * 2 - kept_scores)
        image, label, kept_boxes, kept_scores = image[order], label[order], kept_boxes[order], kept_scores[order]
        # rank of each detection inside its image, to keep the best max_detections of each
        images = torch.arange(boxes.shape[0], device=boxes.device)
        counts = (image[:, None] == images[None, :]).sum(0)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(image.shape[0], device=boxes.device) - starts[image]
        keep = rank < self.max_detections
        return image[keep], kept_boxes[keep], kept_scores[keep], label[keep]


def split_by_image(batch_index: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                   labels: torch.Tensor, count: int) -> list[tuple[torch.Tensor, ...]]:
    """GraphNMS outputs -> per image of the batch (boxes [N,4], scores [N], labels [N])."""
    return [(boxes[batch_index == i], scores[batch_index == i], labels[batch_index == i].long())
            for i in range(count)]
