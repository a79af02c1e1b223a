"""The one record type every reader returns, whatever the source format.

Boxes are float32 [N,4] xyxy absolute pixels of the image; labels are int64 [N], 0-based and
contiguous over `DatasetRecords.class_names`. `category_ids[label]` is the source's own id for
that class (COCO category id, YOLO class index, VOC has none: its position), so predictions can
be written back in the dataset's own ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ERROR = "error"
WARNING = "warning"  # usable, but probably not what the user meant: said once, in one line
INFO = "info"


@dataclass
class Problem:
    """One thing wrong (or worth knowing) about a dataset, located as precisely as possible.

    kind is one of: corrupt_image, missing_image, box_outside_image, zero_size_box, unknown_class,
    image_without_label, empty_label_file, modality_size_mismatch, missing_pair, duplicate_id,
    missing_size, dangling_annotation, bad_label_line, duplicate_stem.
    """

    file: str
    kind: str
    message: str
    line: int | None = None
    severity: str = ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind,
                "severity": self.severity, "message": self.message}


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


@dataclass
class ImageRecord:
    """One image (or one aligned set of images, one per modality) and its annotations.

    - image_id: the source's own image id (COCO id; for YOLO/VOC the position in the split)
    - paths: modality name -> image file, e.g. {"rgb": .../visible/x.jpg, "lwir": .../infrared/x.jpg}
    - width, height: pixels of the image (all modalities share them)
    - boxes: [N,4] float32 xyxy pixels; labels: [N] int64 0-based
    - ignore: [K,4] float32 xyxy pixels of regions that count neither as hits nor misses
      (COCO crowd, VOC difficult, classes a card declares as ignore, e.g. HIT-UAV DontCare)
    - label_file: the file the annotations came from (for problem reports), if any
    """

    image_id: int
    paths: dict[str, Path]
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=empty_boxes)
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    ignore: np.ndarray = field(default_factory=empty_boxes)
    label_file: Path | None = None

    @property
    def stem(self) -> str:
        return next(iter(self.paths.values())).stem


@dataclass
class DatasetRecords:
    """A dataset split as plain data.

    - images: the records, in a stable order
    - class_names: names of labels 0..K-1
    - category_ids: source category id of each label (len K)
    - modalities: modality names in channel-stacking order, e.g. ["rgb"] or ["rgb", "lwir"]
    - problems: what the reader found wrong; records keep only usable boxes
    - source: where it was read from (for messages)
    - annotation_file: the COCO json the records were read from, or None; evaluation compares
      with that file's own annotations (its area, iscrowd, ids), restricted to these records
    - ignore_category_ids: source categories whose boxes became ignore regions (a card's
      `ignore_classes`, e.g. HIT-UAV DontCare); not in `category_ids`
    """

    images: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    modalities: list[str] = field(default_factory=lambda: ["rgb"])
    problems: list[Problem] = field(default_factory=list)
    source: str = ""
    annotation_file: Path | None = None
    ignore_category_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(r.boxes) for r in self.images))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]
