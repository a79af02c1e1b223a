"""What every format reader shares: image lookup by stem, image sizes, box cleaning.

Box conventions: records hold float32 [N,4] xyxy pixels; boxes past the border are clipped and
reported (`box_outside_image`), boxes with zero or negative width/height are dropped and
reported (`zero_size_box`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import UnidentifiedImageError

from detector.boxes import clip_xyxy, degenerate_xyxy, outside_image_xyxy
from detector.data.images import image_size
from detector.data.records import WARNING, Problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# how many stems a missing_pair message lists before it says "... and N more"
_LISTED_STEMS = 10


def index_images(folder: Path, problems: list[Problem] | None = None) -> dict[str, Path]:
    """stem -> image path for every image file directly in `folder` (sorted, first suffix wins).

    Labels and pair partners are matched by stem, so two images sharing one (x.jpg, x.png)
    cannot both be used: the first is, and each other one is reported in `problems` as a
    `duplicate_stem` warning (where a list is given) instead of vanishing without a word."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            kept = found.setdefault(path.stem, path)
            if kept != path and problems is not None:
                problems.append(Problem(str(path), "duplicate_stem",
                                        f"shares its stem with {kept.name}, which is read with "
                                        f"the stem's labels; this file is left out",
                                        severity=WARNING))
    return found


def try_image_size(path: Path, problems: list[Problem]) -> tuple[int, int] | None:
    """`image_size`, or None after appending a `corrupt_image` problem."""
    try:
        return image_size(path)
    except (OSError, UnidentifiedImageError) as e:
        problems.append(Problem(str(path), "corrupt_image", f"cannot read the image header: {e}"))
        return None


def clean_boxes(boxes: np.ndarray, labels: np.ndarray, width: int, height: int, file: str,
                problems: list[Problem], lines: list[int | None] | None = None,
                notes: list[str] | None = None):
    """Keep the usable boxes of one image and report the others.

    - boxes: [N,4] xyxy pixels, labels: [N] int64; lines: source line of each box (or None);
      notes: a prefix per box for the message (e.g. "annotation 7 of x.jpg: ")
    Returns (boxes [M,4] float32 xyxy clipped to the image, labels [M] int64).
    Degenerate boxes (checked before clipping, then again after: a box entirely outside the
    image clips to zero size) are dropped with `zero_size_box`; boxes reaching past the border
    are clipped with `box_outside_image`.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    lines = lines if lines is not None else [None] * len(boxes)
    finite = np.isfinite(boxes).all(axis=1)
    for i in np.flatnonzero(~finite):
        note = notes[i] if notes is not None else ""
        problems.append(Problem(file, "bad_label_line", f"{note}box {boxes[i].tolist()} has "
                                "non-finite coordinates; dropped", line=lines[i]))
    boxes, labels = boxes[finite], labels[finite]
    lines = [line for line, ok in zip(lines, finite) if ok]
    notes = [note for note, ok in zip(notes, finite) if ok] if notes is not None else None
    keep = np.ones(len(boxes), dtype=bool)
    outside = outside_image_xyxy(boxes, width, height)
    clipped = clip_xyxy(boxes, width, height)
    degenerate = degenerate_xyxy(boxes) | degenerate_xyxy(clipped)
    for i in np.flatnonzero(degenerate | outside):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        note = notes[i] if notes is not None else ""
        where = f"{note}box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (xyxy px) in a {width}x{height} image"
        if degenerate[i]:
            keep[i] = False
            message = f"{where} has zero or negative size after clipping; dropped" if outside[i] \
                else f"{where} has zero or negative size; dropped"
            problems.append(Problem(file, "zero_size_box", message, line=lines[i]))
        else:
            problems.append(Problem(file, "box_outside_image", f"{where} reaches past the border; "
                                    "clipped", line=lines[i]))
    return clipped[keep].astype(np.float32), labels[keep]


def stems_message(stems: list[str]) -> str:
    shown = ", ".join(stems[:_LISTED_STEMS])
    more = len(stems) - _LISTED_STEMS
    return shown + (f" ... and {more} more" if more > 0 else "")


def is_data_yaml(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # not ours to judge here: the folder is just not a YOLO dataset
    return isinstance(data, dict) and "names" in data and "format" not in data
