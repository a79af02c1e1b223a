"""Batch operations of the ultralytics adapter (detector.models.yolo): padding, letterboxing a
batch to the square training size (with the placement to undo it), and class-aware NMS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision

from detector.boxes import cxcywh_to_xyxy

PAD_VALUE = 114 / 255  # ultralytics' letterbox grey


def _pad_batch(images: list[torch.Tensor], stride: int) -> torch.Tensor:
    """[B,C,H,W]: images padded right/bottom with grey to a common size divisible by `stride`."""
    height = math.ceil(max(image.shape[-2] for image in images) / stride) * stride
    width = math.ceil(max(image.shape[-1] for image in images) / stride) * stride
    batch = images[0].new_full((len(images), images[0].shape[0], height, width), PAD_VALUE)
    for index, image in enumerate(images):
        batch[index, :, : image.shape[-2], : image.shape[-1]] = image
    return batch


def _letterbox_batch(images: list[torch.Tensor], size: int, stride: int):
    """Resize each image so its long side is `size`, centre it on grey padded to a multiple of
    `stride` (ultralytics' LetterBox with auto=True), then stack (extra padding right/bottom).

    Returns ([B,C,H,W], [(scale, pad_x, pad_y)]): letterboxed = original * scale + pad.
    """
    boxed, placements = [], []
    for image in images:
        height, width = image.shape[-2:]
        scale = size / max(height, width)
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
        if (new_height, new_width) != (height, width):
            # antialiased when shrinking, as ultralytics' INTER_AREA; bilinear when enlarging
            image = F.interpolate(image[None], size=(new_height, new_width), mode="bilinear",
                                  align_corners=False, antialias=scale < 1)[0]
        padded_height = math.ceil(new_height / stride) * stride
        padded_width = math.ceil(new_width / stride) * stride
        top = round((padded_height - new_height) / 2 - 0.1)
        left = round((padded_width - new_width) / 2 - 0.1)
        canvas = image.new_full((image.shape[0], padded_height, padded_width), PAD_VALUE)
        canvas[:, top: top + new_height, left: left + new_width] = image
        boxed.append(canvas)
        # the exact scale per axis after rounding, so boxes map back to the original pixels
        placements.append((torch.tensor([new_width / width, new_height / height] * 2), left, top))
    batch = _pad_batch(boxed, stride)
    return batch, [(scale.to(batch.device), left, top) for scale, left, top in placements]


def _unletterbox(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, placement,
                 image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Boxes [N,4] xyxy of the letterboxed batch -> the contract's dict, in `image`'s pixels."""
    scale, pad_x, pad_y = placement
    height, width = image.shape[-2:]
    boxes = (boxes - boxes.new_tensor([pad_x, pad_y, pad_x, pad_y])) / scale
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return {"boxes": boxes.float(), "scores": scores.float(), "labels": labels}


def _nms(prediction: torch.Tensor, conf_threshold: float, iou_threshold: float, max_detections: int,
         max_candidates: int = 30000):
    """One image's [4+K, A] decoded output (cxcywh pixels, K class probabilities) -> boxes [N,4]
    xyxy, scores [N], labels [N]. Multi-label (a box may score for several classes) and per-class
    NMS, as ultralytics' val; no time limit, so a slow CPU never drops detections."""
    boxes = cxcywh_to_xyxy(prediction[:4].T)
    scores = prediction[4:].T
    anchor, label = torch.nonzero(scores > conf_threshold, as_tuple=True)
    kept_scores = scores[anchor, label]
    if kept_scores.numel() > max_candidates:
        order = kept_scores.topk(max_candidates).indices
        anchor, label, kept_scores = anchor[order], label[order], kept_scores[order]
    keep = torchvision.ops.batched_nms(boxes[anchor].float(), kept_scores.float(), label, iou_threshold)
    keep = keep[:max_detections]
    return boxes[anchor[keep]], kept_scores[keep], label[keep]
