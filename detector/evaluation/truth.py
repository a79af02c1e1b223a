"""`GroundTruth`: the COCO ground truth an evaluation compares with, and what it counts.

Where it comes from:

- **A COCO json** (the records were read from one: `DatasetRecords.annotation_file`, or a
  json given directly): that file's own annotations, as they are: their bbox, `area`, `iscrowd`
  (a crowd region counts for its own category only), image ids and category ids. An `ignore`
  flag changes nothing, as in pycocotools, whose bbox evaluation sets ignore = iscrowd.
  When the records hold a subset of the file, the evaluation is restricted to it: the image ids
  are the records' images (an image whose file is missing, or outside a split, is not
  evaluated) and the category ids the records' categories (a card's `classes`). So the 12 stats
  are pycocotools' on that json with `params.imgIds` / `params.catIds` set to those ids.
  The one addition: the annotations of a card's ignore classes (`ignore_classes`, e.g. HIT-UAV
  DontCare; `DatasetRecords.ignore_category_ids`) become iscrowd=1 copies in every evaluated
  category, so a detection of any class on such a region is neither a hit nor a miss.
- **YOLO, VOC or hand-made records** (no json): built from the records: each box is an
  annotation with bbox [x, y, w, h] pixels, area = w * h, iscrowd 0; each ignore region (VOC
  `difficult` boxes, a card's ignore classes) one iscrowd=1 annotation in every category
  (COCO crowd semantics: any number of detections on it, IoU taken over the detection's area,
  count neither as hits nor misses). VOC's own protocol ignores a difficult box for its class
  only; records keep no class for ignore regions, so here it is ignored for every class.
"""

from __future__ import annotations

import json
from pathlib import Path

from detector.errors import DatasetError


class GroundTruth:
    """A COCO ground truth and the image / category ids an evaluation counts.

    - dataset: {images, annotations, categories} as COCO json has them (bbox [x, y, w, h]
      pixels), or None while only `path` is known (a json file used unchanged)
    - path: the json file when `dataset` is that file unchanged (a backend may parse it itself)
    - image_ids, category_ids: sorted ids to evaluate (pycocotools' params.imgIds / catIds), or
      None for all of the dataset's (pycocotools' defaults)

    (A plain class: `dataclasses` would import `inspect` on the two-file path, see metrics.py.)
    """

    def __init__(self, dataset: dict | None, path: Path | None,
                 image_ids: list[int] | None = None, category_ids: list[int] | None = None):
        self.dataset = dataset
        self.path = path
        self.image_ids = image_ids
        self.category_ids = category_ids

    def load(self) -> dict:
        """The COCO dataset dict, read from `path` on first use."""
        if self.dataset is None:
            self.dataset = read_coco_json(self.path)
        return self.dataset

    def instances(self, category_ids: list[int], class_names: list[str]) -> dict[str, int]:
        """Ground-truth boxes (not crowd regions) per class over the evaluated images."""
        images = set(self.image_ids) if self.image_ids is not None else None
        counts = dict.fromkeys((int(c) for c in category_ids), 0)
        for annotation in self.load()["annotations"]:
            category = annotation.get("category_id")
            if category in counts and not annotation.get("iscrowd", 0) and (
                    images is None or annotation.get("image_id") in images):
                counts[category] += 1
        return {name: counts[int(c)] for name, c in zip(class_names, category_ids)}


def read_coco_json(path) -> dict:
    """A COCO json as a dict; DatasetError naming the file when it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the COCO json: {e}") from e
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "categories")):
        raise DatasetError(f"{path}: expected a COCO json object with 'images' and "
                           "'categories' lists")
    data.setdefault("annotations", [])
    return data


def _usable(annotation: dict) -> bool:
    """A bbox of 4 numbers: what pycocotools can evaluate (the reader reports the others)."""
    bbox = annotation.get("bbox")
    return isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)


def truth_from_json(path, image_ids=None, category_ids=None, ignore_category_ids=(),
                    dataset: dict | None = None) -> GroundTruth:
    """The json's own ground truth, evaluated on `image_ids` / `category_ids` (None: all of
    the file's), with the annotations of `ignore_category_ids` as crowd regions of every
    evaluated category (see the module docstring). `dataset`: the file, already parsed."""
    path = Path(path)
    data = dataset if dataset is not None else read_coco_json(path)
    images = None if image_ids is None else sorted({int(i) for i in image_ids})
    categories = None if category_ids is None else sorted({int(c) for c in category_ids})
    ignored = set(ignore_category_ids)
    if not ignored and all(_usable(a) for a in data["annotations"]):
        return GroundTruth(data, path, images, categories)
    kept, crowd = [], []
    for annotation in data["annotations"]:
        if _usable(annotation):
            (crowd if annotation.get("category_id") in ignored else kept).append(annotation)
    next_id = max((int(a.get("id", 0)) for a in data["annotations"]), default=0) + 1
    every = categories if categories is not None else sorted(
        int(c["id"]) for c in data["categories"] if c["id"] not in ignored)
    for annotation in crowd:
        for category in every:
            kept.append({**annotation, "id": next_id, "category_id": category, "iscrowd": 1})
            next_id += 1
    return GroundTruth({**data, "annotations": kept}, None, images, categories)


def _file_name(record) -> str:
    return next(iter(record.paths.values())).name if record.paths else str(record.image_id)


def records_to_coco(records) -> dict:
    """COCO ground truth {images, annotations, categories} built from `DatasetRecords`, in
    their own ids: bbox [x, y, w, h] float pixels, area = w * h, iscrowd 0; each ignore region
    one iscrowd=1 annotation per category; annotation ids from 1 (faster-coco-eval reads id 0
    as "unmatched")."""
    import numpy as np

    from detector.boxes import xyxy_to_xywh

    category_ids = np.asarray(records.category_ids, dtype=np.int64)
    every_category = category_ids.tolist()
    images, annotations = [], []
    for record in records.images:
        image_id = int(record.image_id)
        images.append({"id": image_id, "width": int(record.width), "height": int(record.height),
                       "file_name": _file_name(record)})
        boxes = xyxy_to_xywh(np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4))
        categories = category_ids[np.asarray(record.labels, dtype=np.int64)].tolist()
        regions = xyxy_to_xywh(np.asarray(record.ignore, dtype=np.float64).reshape(-1, 4))
        for box, category, crowd in [(b, c, 0) for b, c in zip(boxes.tolist(), categories)] + [
                (b, c, 1) for b in regions.tolist() for c in every_category]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category, "bbox": box, "area": box[2] * box[3],
                                "iscrowd": crowd})
    categories = [{"id": int(cid), "name": str(name)}
                  for name, cid in zip(records.class_names, records.category_ids)]
    return {"images": images, "annotations": annotations, "categories": categories}


def truth_from_records(records) -> GroundTruth:
    """The ground truth of `DatasetRecords`: its source json's own annotations restricted to
    the records when it was read from one, else built from the records (module docstring)."""
    image_ids = [int(r.image_id) for r in records.images]
    if records.annotation_file is not None:
        return truth_from_json(records.annotation_file, image_ids, records.category_ids,
                               records.ignore_category_ids)
    return GroundTruth(records_to_coco(records), None, sorted(set(image_ids)),
                       sorted(int(c) for c in records.category_ids))
