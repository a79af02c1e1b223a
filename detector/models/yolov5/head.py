"""YOLOv5's anchor-based Detect head: one 1x1 conv per pyramid level, 3 anchors per cell.

Each level i (stride 8, 16, 32) predicts, per anchor a and cell (y, x), `5 + nc` numbers:
(tx, ty, tw, th, objectness, class_0 .. class_{nc-1}). Decoding (YOLOv5 v6+):

    xy = (2 * sigmoid(txy) - 0.5 + cell) * stride          # centre, input pixels
    wh = (2 * sigmoid(twh)) ** 2 * anchor_px               # size, input pixels
    obj, cls = sigmoid(obj), sigmoid(cls)

Anchors are kept as a buffer `anchors` [levels, 3, 2] in grid units (pixels / stride), exactly
as YOLOv5 stores them, so an official checkpoint's state_dict loads name for name.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def class_prior_bias(num_classes: int) -> float:
    """YOLOv5's class-logit bias for a head of `num_classes`: log(0.6 / (nc - 0.99)).

    The class probability of this head is conditional (score = obj x cls, and the class loss
    sees positives only), so its uninformed prior is about 1/nc. Sigmoid of this bias: 0.0075
    for 80 classes, 0.23 for 3, 0.98 for one (log 60: the class is certain once there is an
    object)."""
    return math.log(0.6 / (num_classes - 0.99))


class AnchorDetect(nn.Module):
    """Detect head. `anchors_px`: per level a flat list [w0, h0, w1, h1, ...] in input pixels
    (the yaml's format); `channels`: input channels per level; strides are set by the network
    (`set_strides`) once it has measured them."""

    def __init__(self, num_classes: int, anchors_px: list[list[float]], channels: list[int]):
        super().__init__()
        self.num_classes = num_classes
        self.num_outputs = num_classes + 5
        self.num_levels = len(anchors_px)
        self.num_anchors = len(anchors_px[0]) // 2
        anchors = torch.tensor(anchors_px, dtype=torch.float32).view(self.num_levels, -1, 2)
        self.register_buffer("anchors", anchors)  # pixels until set_strides divides them
        self.register_buffer("stride", torch.ones(self.num_levels), persistent=False)
        self.m = nn.ModuleList(
            nn.Conv2d(c, self.num_outputs * self.num_anchors, 1) for c in channels
        )

    def set_strides(self, strides: torch.Tensor) -> None:
        """Record the measured strides and turn the pixel anchors into grid units."""
        self.stride.copy_(strides)
        self.anchors /= strides.view(-1, 1, 1)

    def anchors_px(self) -> list[list[float]]:
        """Anchors in input pixels, as the yaml lists them (what build_args stores)."""
        scaled = self.anchors * self.stride.view(-1, 1, 1)
        return [[round(float(v), 4) for v in level.flatten()] for level in scaled]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """features[i]: [B, C_i, H_i, W_i] -> raw predictions [B, anchors, H_i, W_i, 5 + nc]."""
        out = []
        for conv, x in zip(self.m, features):
            batch, _, height, width = x.shape
            y = conv(x).view(batch, self.num_anchors, self.num_outputs, height, width)
            out.append(y.permute(0, 1, 3, 4, 2).contiguous())
        return out

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """Raw predictions -> [B, N, 5 + nc]: cx, cy, w, h in input pixels, obj and class
        probabilities (sigmoid), N = sum over levels of anchors * H * W."""
        decoded = []
        for level, y in enumerate(raw):
            batch, anchors, height, width, _ = y.shape
            rows = torch.arange(height, device=y.device, dtype=y.dtype)
            cols = torch.arange(width, device=y.device, dtype=y.dtype)
            grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
            cells = torch.stack((grid_x, grid_y), -1).view(1, 1, height, width, 2)
            anchor_px = (self.anchors[level] * self.stride[level]).view(1, anchors, 1, 1, 2)
            y = y.sigmoid()
            xy = (y[..., :2] * 2 - 0.5 + cells) * self.stride[level]
            wh = (y[..., 2:4] * 2) ** 2 * anchor_px
            decoded.append(torch.cat((xy, wh, y[..., 4:]), -1).view(batch, -1, self.num_outputs))
        return torch.cat(decoded, 1)

    @torch.no_grad()
    def initialize_biases(self, image_size: int = 640) -> None:
        """YOLOv5's prior: about 8 objects per 640x640 image and 0.6 / nc class probability,
        so a fresh head starts with a sensible objectness instead of 0.5 everywhere."""
        for conv, stride in zip(self.m, self.stride.tolist()):
            bias = conv.bias.view(self.num_anchors, -1)
            bias[:, 4] += math.log(8 / (image_size / stride) ** 2)
            bias[:, 5:] += class_prior_bias(self.num_classes)

    @torch.no_grad()
    def remap_classes(self, num_classes: int, mapping: dict[int, int]) -> None:
        """Rebuild the convs for `num_classes`. Box and objectness rows of every anchor are kept;
        class row `new` gets the pretrained row `mapping[new]`.

        A fresh row (a class no pretrained row maps to) starts as a fresh head's would: zero
        weights and the bias `class_prior_bias(num_classes)`, so P(class | object) begins at the
        uninformed prior for the new class set, the same on every cell, and the pretrained
        objectness alone decides where it fires. Why not a silent row (p = 1e-4, so that an
        unmapped class fires nothing before training)? The class probability here is
        conditional on an object: 1e-4 says "an object here is almost never this class", false
        by construction, and for a single class (where YOLOv5 switches the class loss off) it
        is fatal: obj x 1e-4 never passes the 0.001 threshold and nothing learns it up. With
        the prior a single fresh class is detected from step 0 (wherever the COCO objectness
        fires) and only has to learn *where*; among mapped classes a fresh row at ~1/nc is
        trained down on the mapped classes' positives by the class loss (on for every nc, see
        loss.py); its early extra boxes cost the mapped classes nothing in per-class AP
        (only the max_detections cap is shared). Measured (tests/test_finetune_contract.py,
        yolov5n.pt, one new class, 64 steps): val AP50 0.915 with the prior, 0.681 with the
        1e-4 row and the class loss on, 0.000 with the 1e-4 row and the class loss off.
        Ultralytics' v8 head (class score unconditional, BCE on every anchor, no objectness)
        rightly starts a fresh class near its base rate instead (see ultralytics/adapter.py); Faster R-CNN's
        softmax head starts a fresh row at logit ~0 against a trained background row (rcnn/adapter.py)."""
        old_outputs = self.num_outputs
        new_outputs = num_classes + 5
        fresh_bias = class_prior_bias(num_classes)
        convs = nn.ModuleList()
        for old_conv in self.m:
            new_conv = nn.Conv2d(old_conv.in_channels, self.num_anchors * new_outputs, 1).to(
                old_conv.weight.device, old_conv.weight.dtype)
            new_conv.weight.zero_()
            new_conv.bias.fill_(fresh_bias)
            for anchor in range(self.num_anchors):
                old_base, new_base = anchor * old_outputs, anchor * new_outputs
                rows = [(new_base + k, old_base + k) for k in range(5)]
                rows += [(new_base + 5 + new, old_base + 5 + old) for new, old in mapping.items()]
                for new_row, old_row in rows:
                    new_conv.weight[new_row] = old_conv.weight[old_row]
                    new_conv.bias[new_row] = old_conv.bias[old_row]
            convs.append(new_conv)
        self.m = convs
        self.num_classes = num_classes
        self.num_outputs = new_outputs


def non_max_suppression(decoded: torch.Tensor, conf_threshold: float, iou_threshold: float,
                        max_detections: int, multi_label: bool = True,
                        max_candidates: int = 30000) -> list[dict[str, torch.Tensor]]:
    """YOLOv5's NMS on `decoded` [B, N, 5 + nc] (cx, cy, w, h pixels, obj, class probs).

    Score = obj * class probability. With `multi_label` a box is kept once per class scoring
    above `conf_threshold` (what YOLOv5's val.py does; it raises mAP by about 0.5-1 point);
    otherwise only its best class. Per-class NMS (torchvision batched_nms), then the best
    `max_detections`. Returns per image {"boxes": [M,4] xyxy pixels, "scores", "labels"}.
    """
    from torchvision.ops import batched_nms

    from detector.boxes import cxcywh_to_xyxy

    results = []
    for prediction in decoded:
        prediction = prediction[prediction[:, 4] > conf_threshold]
        scores = prediction[:, 5:] * prediction[:, 4:5]
        boxes = cxcywh_to_xyxy(prediction[:, :4])
        if multi_label:
            index, label = (scores > conf_threshold).nonzero(as_tuple=True)
            boxes, score = boxes[index], scores[index, label]
        else:
            score, label = scores.max(1)
            keep = score > conf_threshold
            boxes, score, label = boxes[keep], score[keep], label[keep]
        if score.numel() > max_candidates:
            order = score.argsort(descending=True)[:max_candidates]
            boxes, score, label = boxes[order], score[order], label[order]
        keep = batched_nms(boxes.float(), score.float(), label, iou_threshold)[:max_detections]
        results.append({"boxes": boxes[keep].float(), "scores": score[keep].float(),
                        "labels": label[keep].long()})
    return results
