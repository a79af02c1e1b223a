"""YOLOv5's anchor-based training loss (box CIoU + objectness BCE + class BCE).

Target assignment (YOLOv5 `build_targets`): a ground-truth box goes to every anchor of a level
whose width and height ratios to the box are both within `anchor_threshold` (4.0), in the cell
holding its centre and in the two neighbouring cells nearest to that centre (YOLOv5's
"offsets"), which triples the positives. The objectness target of a positive is its CIoU with
the box (detached, clamped at 0); every other cell-anchor is a negative.

Gains are YOLOv5's hyp.scratch defaults scaled as its train.py does: box 0.05 * 3/levels,
cls 0.5 * nc/80 * 3/levels, obj 1.0 * (image_size/640)^2 * 3/levels; per-level objectness
balance [4.0, 1.0, 0.4]. Like YOLOv5 each loss is multiplied by the batch size: the global batch
under torchrun (the per-process batch times the processes), because DDP averages the processes'
gradients, so each process's loss must carry the global factor for the step to equal one process's
step on the whole batch. Unlike YOLOv5 the class loss is kept for a single class: a fresh row starts
at YOLOv5's prior (p = 0.98 for one class, see head.py) but a single class mapped from a pretrained
row starts at that row's COCO-conditional probability, which only the class loss can move to the
user's class.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils.metrics import bbox_iou

BOX_GAIN = 0.05
OBJ_GAIN = 1.0
CLS_GAIN = 0.5
ANCHOR_THRESHOLD = 4.0
LEVEL_BALANCE = {3: [4.0, 1.0, 0.4]}
# Cell offsets (in cells) of the centre cell and its four neighbours, scaled by 0.5.
NEIGHBOUR_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * 0.5


def _world_size() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if distributed else 1


class AnchorLoss:
    """Callable: loss(raw, targets) -> {"box", "obj", "cls"} scalar tensors.

    raw: the head's raw outputs, per level [B, anchors, H, W, 5 + nc];
    targets: [T, 6] rows (image index in batch, class, cx, cy, w, h) with cx..h normalised to
    the (letterboxed) network input, 0..1.
    anchors: [levels, anchors, 2] in grid units (the head's `anchors` buffer).
    """

    def __init__(self, anchors: torch.Tensor, num_classes: int, image_size: int):
        self.anchors = anchors
        self.num_classes = num_classes
        levels = anchors.shape[0]
        self.balance = LEVEL_BALANCE.get(levels, [4.0, 1.0, 0.25, 0.06, 0.02][:levels])
        self.box_gain = BOX_GAIN * 3 / levels
        self.cls_gain = CLS_GAIN * num_classes / 80 * 3 / levels
        self.obj_gain = OBJ_GAIN * (image_size / 640) ** 2 * 3 / levels
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, raw: list[torch.Tensor], targets: torch.Tensor) -> dict[str, torch.Tensor]:
        device = raw[0].device
        box_loss = torch.zeros((), device=device)
        obj_loss = torch.zeros((), device=device)
        cls_loss = torch.zeros((), device=device)
        assigned = self.build_targets(raw, targets)
        for level, (prediction, (image, anchor, cell_y, cell_x, target_box, cls, anchors)) in \
                enumerate(zip(raw, assigned)):
            objectness = torch.zeros(prediction.shape[:4], dtype=prediction.dtype, device=device)
            if image.numel():
                picked = prediction[image, anchor, cell_y, cell_x]
                xy = picked[:, :2].sigmoid() * 2 - 0.5
                wh = (picked[:, 2:4].sigmoid() * 2) ** 2 * anchors
                iou = bbox_iou(torch.cat((xy, wh), 1), target_box, xywh=True, CIoU=True).squeeze(-1)
                box_loss = box_loss + (1.0 - iou).mean()
                objectness[image, anchor, cell_y, cell_x] = iou.detach().clamp(0).to(objectness.dtype)
                # Always, a single class too (YOLOv5 skips it for nc=1): a single class mapped
                # from a pretrained row (e.g. 'car') starts with COCO's idea of which objects are
                # cars, and score = obj x cls stays there unless the class loss moves it.
                onehot = torch.zeros_like(picked[:, 5:])
                onehot[torch.arange(len(cls), device=device), cls] = 1.0
                cls_loss = cls_loss + self.bce(picked[:, 5:], onehot)
            obj_loss = obj_loss + self.bce(prediction[..., 4], objectness) * self.balance[level]
        batch = raw[0].shape[0] * _world_size()  # the global batch: see the module docstring
        return {"box": box_loss * self.box_gain * batch,
                "obj": obj_loss * self.obj_gain * batch,
                "cls": cls_loss * self.cls_gain * batch}

    def build_targets(self, raw: list[torch.Tensor], targets: torch.Tensor):
        """Per level: (image, anchor, cell_y, cell_x) indices of the positives, their target
        boxes (cx, cy relative to the cell, w, h; grid units), classes and matched anchors."""
        device = targets.device
        anchors_all = self.anchors.to(device)
        num_anchors = anchors_all.shape[1]
        count = targets.shape[0]
        anchor_index = torch.arange(num_anchors, device=device).float().view(num_anchors, 1).repeat(1, count)
        # [anchors, T, 7]: image, class, cx, cy, w, h, anchor
        rows = torch.cat((targets.repeat(num_anchors, 1, 1), anchor_index[..., None]), 2)
        offsets_table = NEIGHBOUR_OFFSETS.to(device)
        gain = torch.ones(7, device=device)
        out = []
        for level, prediction in enumerate(raw):
            anchors = anchors_all[level]
            height, width = prediction.shape[2:4]
            gain[2:6] = torch.tensor([width, height, width, height], device=device, dtype=gain.dtype)
            scaled = rows * gain
            if count:
                ratio = scaled[..., 4:6] / anchors[:, None]
                keep = torch.max(ratio, 1 / ratio).max(2)[0] < ANCHOR_THRESHOLD
                scaled = scaled[keep]
                centre = scaled[:, 2:4]
                from_far_side = gain[[2, 3]] - centre
                left, top = ((centre % 1 < 0.5) & (centre > 1)).T
                right, bottom = ((from_far_side % 1 < 0.5) & (from_far_side > 1)).T
                use = torch.stack((torch.ones_like(left), left, top, right, bottom))
                scaled = scaled.repeat((5, 1, 1))[use]
                offsets = (torch.zeros_like(centre)[None] + offsets_table[:, None])[use]
            else:
                scaled = rows[0]
                offsets = torch.zeros((0, 2), device=device)
            image, cls = scaled[:, :2].long().T
            centre, size, anchor = scaled[:, 2:4], scaled[:, 4:6], scaled[:, 6].long()
            cell = (centre - offsets).long()
            cell_x = cell[:, 0].clamp_(0, width - 1)
            cell_y = cell[:, 1].clamp_(0, height - 1)
            target_box = torch.cat((centre - cell, size), 1)
            out.append((image, anchor, cell_y, cell_x, target_box, cls, anchors[anchor]))
        return out
