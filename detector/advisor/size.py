"""How much labelled data there is, and how large its objects are at the model's input.

Counted from the label records (no pixels are decoded): images, boxes, boxes per class, the
smallest class, and the object size each box has once its image is resized so that its long side
is the model's input size (`sqrt(w * h)` of the box, in input pixels).

`recommend_image_size` picks the smallest standard input size at which most objects stay above
the finest detection stride, so that small-object data gets a larger input and large-object data
a cheaper one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detector.data.records import DatasetRecords

# Square input sizes (multiples of 32, every family's largest stride) the advice chooses from.
IMAGE_SIZES = (320, 416, 512, 640, 768, 896, 1024, 1280)
# An object under ~8 px at the input covers about one cell of the stride-8 level, the finest one
# YOLO and FPN detectors have: below that it is hardly detectable.
MIN_OBJECT_PX = 8.0
# The share of objects allowed under MIN_OBJECT_PX at the chosen size.
SMALL_OBJECT_SHARE = 0.1


@dataclass
class DataSize:
    """Label statistics of one split.

    - object_px: percentiles {10, 50, 90} of sqrt(box area) at `input_size` (px)
    - small_share: share of boxes under MIN_OBJECT_PX at `input_size`
    - native_long_side: median long side of the images (px); native_aspect: median short / long
    """

    images: int
    boxes: int
    boxes_per_class: dict[str, int]
    empty_images: int
    input_size: int
    object_px: dict[int, float] = field(default_factory=dict)
    small_share: float = 0.0
    native_long_side: int = 0
    native_aspect: float = 0.75
    relative: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def smallest_class(self) -> tuple[str, int] | None:
        """(name, boxes) of the class with the fewest boxes; None without classes."""
        if not self.boxes_per_class:
            return None
        name = min(self.boxes_per_class, key=lambda n: self.boxes_per_class[n])
        return name, self.boxes_per_class[name]

    def object_px_at(self, size: int, percentile: float) -> float:
        """The `percentile` object size (px) if images were resized to long side `size`."""
        if len(self.relative) == 0:
            return math.nan
        return float(np.percentile(self.relative * size, percentile))

    def small_share_at(self, size: int) -> float:
        if len(self.relative) == 0:
            return 0.0
        return float((self.relative * size < MIN_OBJECT_PX).mean())


def measure_size(records: DatasetRecords, input_size: int) -> DataSize:
    """Count `records` and measure object sizes at a long side of `input_size` px."""
    counts = {name: 0 for name in records.class_names}
    relative, long_sides, aspects, empty = [], [], [], 0
    for record in records.images:
        long_side = max(record.width, record.height)
        long_sides.append(long_side)
        aspects.append(min(record.width, record.height) / max(long_side, 1))
        if len(record.boxes) == 0:
            empty += 1
            continue
        boxes = np.asarray(record.boxes, dtype=np.float64)
        area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        relative.append(np.sqrt(area) / long_side)
        for label in np.asarray(record.labels).tolist():
            counts[records.class_names[label]] += 1
    relative = np.concatenate(relative) if relative else np.zeros(0)
    size = DataSize(images=len(records.images), boxes=int(len(relative)), boxes_per_class=counts,
                    empty_images=empty, input_size=int(input_size), relative=relative,
                    native_long_side=int(np.median(long_sides)) if long_sides else 0,
                    native_aspect=float(np.median(aspects)) if aspects else 0.75)
    if len(relative):
        size.object_px = {p: size.object_px_at(input_size, p) for p in (10, 50, 90)}
        size.small_share = size.small_share_at(input_size)
    return size


def recommend_image_size(size: DataSize) -> tuple[int, str]:
    """(input size, why): the smallest of IMAGE_SIZES keeping at most SMALL_OBJECT_SHARE of the
    objects under MIN_OBJECT_PX, no larger than the images' native long side (rounded up to 32)
    unless even that loses too many."""
    native = max(IMAGE_SIZES[0], int(math.ceil(size.native_long_side / 32) * 32))
    if len(size.relative) == 0:
        return min(size.input_size, native), "no boxes: the model's input size"
    for candidate in IMAGE_SIZES:
        if candidate > native:
            break
        if size.small_share_at(candidate) <= SMALL_OBJECT_SHARE:
            share = size.small_share_at(candidate)
            return candidate, (f"{share:.0%} of objects under {MIN_OBJECT_PX:g} px at {candidate} "
                               f"(10th percentile {size.object_px_at(candidate, 10):.1f} px)")
    return native, (f"{size.small_share_at(native):.0%} of objects stay under {MIN_OBJECT_PX:g} px "
                    f"even at the native {native}: consider tiling the images")


__all__ = ["IMAGE_SIZES", "MIN_OBJECT_PX", "DataSize", "measure_size", "recommend_image_size"]
