"""Letterboxing (resize keeping the aspect, centre on grey) and NMS for the YOLO families:
`letterbox` one image to a shape (YOLOv5's val.py and training), `letterbox_batch` a batch to a
long side padded to the stride (ultralytics' LetterBox, auto=True), `pad_batch`, and the
multi-label class-aware `nms` of the ultralytics head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision

from detector.boxes import cxcywh_to_xyxy

PAD_VALUE = 114 / 255  # the letterbox grey of YOLOv5 and ultralytics


def letterbox(image: torch.Tensor, shape: tuple[int, int], ratio: float):
    """Resize [C,H,W] by `ratio` and pad it centred to `shape` (h, w) with grey 114.

    Returns (image [C, h, w], gain, (pad_x, pad_y)): input pixels = (letterboxed - pad) / gain.
    """
    height, width = image.shape[-2:]
    new_w, new_h = round(width * ratio), round(height * ratio)
    if (new_h, new_w) != (height, width):
        # antialias when shrinking ~ cv2.INTER_AREA, YOLOv5's choice for downscaling
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                              align_corners=False, antialias=new_w < width)[0]
    pad_w, pad_h = (shape[1] - new_w) / 2, (shape[0] - new_h) / 2
    left, top = round(pad_w - 0.1), round(pad_h - 0.1)
    right, bottom = shape[1] - new_w - left, shape[0] - new_h - top
    image = F.pad(image, (left, right, top, bottom), value=PAD_VALUE)
    gain = torch.tensor([new_w / width, new_h / height] * 2)
    return image, gain, (left, top)


def pad_batch(images: list[torch.Tensor], stride: int) -> torch.Tensor:
    """[B,C,H,W]: images padded right/bottom with grey to a common size divisible by `stride`."""
    height = math.ceil(max(image.shape[-2] for image in images) / stride) * stride
    width = math.ceil(max(image.shape[-1] for image in images) / stride) * stride
    batch = images[0].new_full((len(images), images[0].shape[0], height, width), PAD_VALUE)
    for index, image in enumerate(images):
        batch[index, :, : image.shape[-2], : image.shape[-1]] = image
    return batch


def letterbox_batch(images: list[torch.Tensor], size: int, stride: int):
    """Resize each image so its long side is `size`, centre it on grey padded to a multiple of
    `stride` (ultralytics' LetterBox with auto=True), then stack (extra padding right/bottom).

    Returns ([B,C,H,W], [(scale, pad_x, pad_y)]): letterboxed = original * scale + pad.
    """
    boxed, placements = [], []
    for image in images:
        height, width = image.shape[-2:]
        scale = size / max(height, width)
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
        shape = (math.ceil(new_height / stride) * stride, math.ceil(new_width / stride) * stride)
        canvas, gain, (left, top) = letterbox(image, shape, scale)
        boxed.append(canvas)
        placements.append((gain, left, top))
    batch = pad_batch(boxed, stride)
    return batch, [(scale.to(batch.device), left, top) for scale, left, top in placements]


def unletterbox(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, placement,
                 image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Boxes [N,4] xyxy of the letterboxed batch -> the contract's dict, in `image`'s pixels."""
    scale, pad_x, pad_y = placement
    height, width = image.shape[-2:]
    boxes = (boxes - boxes.new_tensor([pad_x, pad_y, pad_x, pad_y])) / scale.to(boxes.device)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return {"boxes": boxes.float(), "scores": scores.float(), "labels": labels}


def nms(prediction: torch.Tensor, conf_threshold: float, iou_threshold: float, max_detections: int,
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
