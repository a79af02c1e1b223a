"""Mosaic: four training images tiled around a random centre, cropped back to one image.

    augment:
      - {name: Mosaic, p: 1.0}        # first in the list: the other transforms see the mosaic
      - {name: HorizontalFlip, p: 0.5}

YOLO's augmentation (YOLOv4, YOLOv5, ultralytics): each sample becomes, with probability `p`,
the sample and three others drawn at random from the dataset. Each of the four is resized so its
long side is `size` (the training size; without one, the first image's long side) and placed in
one quadrant of a 2*size square around a centre (cx, cy) drawn uniformly in [size/2, 3*size/2];
the size x size window in the middle of that square, [size/2, 3*size/2) on both axes, is the
result. So objects keep their scale, an image holds objects of up to four scenes and their
context is cut at random places.

Every modality of a sample is resized by the same factor and pasted at the same place (one
geometry for RGB, LWIR and RGB+LWIR); the empty canvas is the letterbox grey (114 of 255, the
same fraction of 65535 for 16-bit data). Boxes and ignore regions move with the pixels, are
clipped to the window, and a box keeping less than `min_visibility` of its area (the
transforms' setting) is dropped, as albumentations drops one.

`close_epochs: N` turns it off for the last N epochs of a run (ultralytics' `close_mosaic`: the
model ends on whole images, as it will see them): `fit` tells the dataset the epoch
(`DetectionDataset.set_epoch`) and restarts the loader's workers when it changes. N at least the
run's length means no mosaic at all.

The random draws come from torch's generator, which DataLoader seeds per worker and per epoch,
so workers differ and `torch.manual_seed` repeats a run.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from detector.errors import ConfigError

# letterbox grey, as a fraction of the dtype's range (transforms.PAD_VALUE for float images)
_GREY = 114.0 / 255.0


class Mosaic:
    """`p`: probability that a sample becomes a mosaic; `min_visibility`, `close_epochs`: see
    the module."""

    def __init__(self, p: float = 1.0, min_visibility: float = 0.3, close_epochs: int = 0):
        if not 0.0 <= float(p) <= 1.0:
            raise ConfigError(f"Mosaic: p must be in 0..1, got {p!r}")
        if isinstance(close_epochs, bool) or not isinstance(close_epochs, int) or close_epochs < 0:
            raise ConfigError(f"Mosaic: close_epochs must be a whole number >= 0, got {close_epochs!r}")
        self.p = float(p)
        self.min_visibility = float(min_visibility)
        self.close_epochs = close_epochs

    def __repr__(self) -> str:
        return f"Mosaic(p={self.p}, close_epochs={self.close_epochs})"

    def open_at(self, epoch: int, epochs: int) -> bool:
        """Is the mosaic on in `epoch` (0-based) of a run of `epochs`?"""
        return epoch < epochs - self.close_epochs

    def applies(self) -> bool:
        """One draw: does this sample become a mosaic?"""
        return self.p > 0 and float(torch.rand(())) < self.p

    @staticmethod
    def indices(index: int, count: int) -> list[int]:
        """The four samples of the mosaic of sample `index`: it and three drawn at random from
        the `count` samples (with replacement, as ultralytics draws them)."""
        return [index] + [int(i) for i in torch.randint(0, count, (3,))]

    def combine(self, samples: list[tuple], size: int | None = None):
        """Four (images {modality: [H,W,C]}, boxes [N,4] xyxy px, labels [N], ignore [K,4])
        -> one such tuple of size x size images (`size` default: the first image's long side)."""
        if len(samples) != 4:
            raise ValueError(f"Mosaic.combine: expected 4 samples, got {len(samples)}")
        first = next(iter(samples[0][0].values()))
        size = int(size or max(first.shape[:2]))
        centre_x, centre_y = (float(v) for v in torch.empty(2).uniform_(0.5 * size, 1.5 * size))
        centre_x, centre_y = int(centre_x), int(centre_y)
        window = np.array([size // 2, size // 2] * 2, np.float32)
        canvas = {m: _blank(image, 2 * size) for m, image in samples[0][0].items()}
        all_boxes, all_labels, all_ignore = [], [], []
        for quadrant, (images, boxes, labels, ignore) in enumerate(samples):
            height, width = next(iter(images.values())).shape[:2]
            ratio = size / max(height, width)
            new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
            # top-left quadrant ends at the centre, top-right starts there, and so on
            x0 = centre_x - new_w if quadrant in (0, 2) else centre_x
            y0 = centre_y - new_h if quadrant in (0, 1) else centre_y
            for modality, image in images.items():
                if modality not in canvas:
                    raise ValueError(f"Mosaic: sample {quadrant} has modality {modality!r}, "
                                     f"the first has {', '.join(canvas)}")
                _paste(canvas[modality], _resized(image, new_w, new_h), x0, y0)
            factor = np.array([new_w / width, new_h / height] * 2, np.float32)
            offset = np.array([x0, y0, x0, y0], np.float32)
            all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4) * factor + offset)
            all_labels.append(np.asarray(labels, np.int64).reshape(-1))
            all_ignore.append(np.asarray(ignore, np.float32).reshape(-1, 4) * factor + offset)
        start = size // 2
        images = {m: np.ascontiguousarray(c[start:start + size, start:start + size])
                  for m, c in canvas.items()}
        boxes, keep = self._clip(np.concatenate(all_boxes) - window, size)
        ignore, keep_ignore = self._clip(np.concatenate(all_ignore) - window, size)
        return images, boxes[keep], np.concatenate(all_labels)[keep], ignore[keep_ignore]

    def _clip(self, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes [N,4] clipped to the size x size window, and which keep enough of their area."""
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        clipped = boxes.clip(0, size)
        kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = (kept_area > 0) & (kept_area >= self.min_visibility * np.maximum(area, 1e-6))
        return clipped, keep


def _blank(image: np.ndarray, side: int) -> np.ndarray:
    """A side x side canvas of `image`'s channels and dtype, filled with letterbox grey."""
    if image.dtype == np.uint8:
        fill = 114
    elif image.dtype == np.uint16:
        fill = round(_GREY * 65535)
    else:
        fill = _GREY
    return np.full((side, side, image.shape[2]), fill, dtype=image.dtype)


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1]
    out = cv2.resize(image, (width, height),
                     interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return out[:, :, None] if out.ndim == 2 else out


def _paste(canvas: np.ndarray, image: np.ndarray, x0: int, y0: int) -> None:
    """Copy `image` into `canvas` with its top-left corner at (x0, y0), cut at the edges."""
    side = canvas.shape[0]
    height, width = image.shape[:2]
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + width, side), min(y0 + height, side)
    if right > left and bottom > top:
        canvas[top:bottom, left:right] = image[top - y0:bottom - y0, left - x0:right - x0]
