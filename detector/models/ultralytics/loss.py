"""The training loss of ultralytics models, from the Detector contract's targets.

Ultralytics' detection loss (`v8DetectionLoss`; `E2ELoss` for NMS-free heads) takes a batch dict
{img [B,C,H,W], batch_idx [M], cls [M,1], bboxes [M,4] cxcywh normalised by the image size} and
returns its three gain-weighted terms (box 7.5 x IoU loss, cls 0.5 x BCE, dfl 1.5 x DFL) each
multiplied by the batch size; its trainer then accumulates gradients over a nominal batch of 64
images per optimizer step.

Here each term is the per-batch loss times LOSS_SCALE, a constant: the gradient does not depend
on the batch size (DDP shards average to the single-process gradient) and the engine's usual
learning rates apply. With 16, one SGD step at batch 16 moves the weights as much as ultralytics
moves them per 16 images, so its recipe carries over at batch 16: lr 0.01, momentum 0.937,
weight decay 5e-4 per 64 images (~1.25e-4 per step of 16). Scale lr linearly with the batch size.
For E2ELoss the one-to-many / one-to-one mix stays at its initial 0.8 / 0.2 (ultralytics decays it
per epoch through a trainer hook this engine does not have).
"""

from __future__ import annotations

import torch
from torch import nn

from detector.boxes import xyxy_to_cxcywh

LOSS_SCALE = 16.0


def ultralytics_batch(batch: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
    """Ultralytics' batch dict for images `batch` [B,C,H,W] and contract targets (boxes [M,4]
    xyxy pixels of `batch`'s images, labels [M] 0-based)."""
    height, width = batch.shape[-2:]
    size = torch.tensor([width, height, width, height], device=batch.device, dtype=torch.float32)
    indices, classes, boxes = [], [], []
    for index, target in enumerate(targets):
        count = len(target["boxes"])
        indices.append(torch.full((count,), float(index), device=batch.device))
        classes.append(target["labels"].to(batch.device, torch.float32))
        boxes.append(xyxy_to_cxcywh(target["boxes"].to(batch.device, torch.float32)) / size)
    return {"img": batch, "batch_idx": torch.cat(indices), "cls": torch.cat(classes).view(-1, 1),
            "bboxes": torch.cat(boxes).view(-1, 4)}


def loss_names(criterion) -> list[str]:
    """'box', 'cls', 'dfl' (or 'l1' for heads without DFL bins), in the criterion's order."""
    names = getattr(criterion, "loss_names", None) or criterion.one2many.loss_names
    return [name.removesuffix("_loss") for name in names]


def detection_losses(model: nn.Module, criterion, batch: torch.Tensor,
                     targets: list[dict]) -> dict[str, torch.Tensor]:
    """Named scalar losses of ultralytics `model` (in train mode) on `batch` [B,C,H,W] (H and W
    divisible by the model's largest stride) with contract `targets`."""
    predictions = model(batch)
    total, _ = criterion(predictions, ultralytics_batch(batch, targets))  # [3], x batch size
    terms = total / batch.shape[0] * LOSS_SCALE
    return dict(zip(loss_names(criterion), terms.unbind()))
