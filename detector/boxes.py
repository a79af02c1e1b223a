"""Box formats and their conversions.

Records and the Detector contract use float32 ``xyxy`` absolute pixels. Every other format is
converted here, and every function is named by the formats it converts between:

- ``xyxy``:   [x1, y1, x2, y2]  corners
- ``xywh``:   [x1, y1, w, h]    top-left corner and size (COCO json)
- ``cxcywh``: [cx, cy, w, h]    centre and size (YOLO txt, normalised by image width/height)

Functions take and return arrays of shape [N,4] (numpy or torch, the same type back).
"""

from __future__ import annotations

import numpy as np
import torch


def _split(boxes):
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def _stack(boxes, cols):
    if isinstance(boxes, torch.Tensor):
        return torch.stack(cols, dim=-1)
    return np.stack(cols, axis=-1).astype(boxes.dtype, copy=False)


def xywh_to_xyxy(boxes):
    """[N,4] xywh -> [N,4] xyxy (same units)."""
    x, y, w, h = _split(boxes)
    return _stack(boxes, [x, y, x + w, y + h])


def xyxy_to_xywh(boxes):
    """[N,4] xyxy -> [N,4] xywh (same units)."""
    x1, y1, x2, y2 = _split(boxes)
    return _stack(boxes, [x1, y1, x2 - x1, y2 - y1])


def cxcywh_to_xyxy(boxes):
    """[N,4] cxcywh -> [N,4] xyxy (same units)."""
    cx, cy, w, h = _split(boxes)
    return _stack(boxes, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def xyxy_to_cxcywh(boxes):
    """[N,4] xyxy -> [N,4] cxcywh (same units)."""
    x1, y1, x2, y2 = _split(boxes)
    return _stack(boxes, [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def normalize_xyxy(boxes, width: float, height: float):
    """[N,4] xyxy pixels -> [N,4] xyxy in 0..1 of the image size."""
    scale = [width, height, width, height]
    if isinstance(boxes, torch.Tensor):
        return boxes / boxes.new_tensor(scale)
    return (boxes / np.asarray(scale, dtype=boxes.dtype)).astype(boxes.dtype, copy=False)


def denormalize_xyxy(boxes, width: float, height: float):
    """[N,4] xyxy in 0..1 -> [N,4] xyxy pixels."""
    scale = [width, height, width, height]
    if isinstance(boxes, torch.Tensor):
        return boxes * boxes.new_tensor(scale)
    return (boxes * np.asarray(scale, dtype=boxes.dtype)).astype(boxes.dtype, copy=False)


def clip_xyxy(boxes, width: float, height: float):
    """[N,4] xyxy pixels clipped to the image [0, width] x [0, height]."""
    if isinstance(boxes, torch.Tensor):
        out = boxes.clone()
        out[..., 0::2] = out[..., 0::2].clamp(0, width)
        out[..., 1::2] = out[..., 1::2].clamp(0, height)
        return out
    out = boxes.copy()
    out[..., 0::2] = np.clip(out[..., 0::2], 0, width)
    out[..., 1::2] = np.clip(out[..., 1::2], 0, height)
    return out


def areas_xyxy(boxes):
    """[N,4] xyxy -> [N] areas (negative sizes give zero)."""
    x1, y1, x2, y2 = _split(boxes)
    if isinstance(boxes, torch.Tensor):
        return (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def outside_image_xyxy(boxes, width: float, height: float, tolerance: float = 0.5):
    """[N] bool: the box reaches past the image border by more than `tolerance` pixels."""
    x1, y1, x2, y2 = _split(boxes)
    t = tolerance
    return (x1 < -t) | (y1 < -t) | (x2 > width + t) | (y2 > height + t)


def degenerate_xyxy(boxes, min_size: float = 0.0):
    """[N] bool: width or height is <= `min_size` (zero or negative size boxes)."""
    x1, y1, x2, y2 = _split(boxes)
    return ((x2 - x1) <= min_size) | ((y2 - y1) <= min_size)
