"""COCO json (instances_*.json) + an image folder -> `DatasetRecords`.

- Category ids may be non-contiguous (COCO's 1..90) or start at 0 (HIT-UAV): labels are the
  categories' positions in id order (or in the card's `classes` order), `category_ids` maps back.
- bbox is [x, y, w, h] pixels; records hold xyxy pixels.
- iscrowd=1 annotations become ignore regions; images without annotations stay, as negatives.
- An annotation whose image_id is not an image -> `dangling_annotation`; an image listed twice ->
  `duplicate_id`; an image file that is not there -> `missing_image` (the image is dropped).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from detector.boxes import xywh_to_xyxy
from detector.data.readers.common import clean_boxes, try_image_size
from detector.data.records import INFO, WARNING, DatasetRecords, ImageRecord, Problem
from detector.errors import DatasetError


def load_json(path: Path) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the COCO json: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: expected a COCO json object with an 'images' list")
    if not isinstance(data.get("categories"), list):
        raise DatasetError(f"{path}: expected a COCO json object with a 'categories' list")
    return data


def _image_folder_candidates(json_path: Path) -> list[Path]:
    """Where COCO layouts usually keep the images of <dir>/annotations/instances_<split>.json."""
    split = json_path.stem
    for prefix in ("instances_", "coco_"):
        if split.startswith(prefix):
            split = split[len(prefix):]
    here = json_path.parent
    roots = [here.parent, here] if here.name == "annotations" else [here, here.parent]
    found = []
    for root in roots:
        found += [root / "images" / split, root / split, root / "images", root]
    return found


def find_image_folder(json_path: Path, file_name: str) -> Path:
    """The first usual folder that holds `file_name`; DatasetError listing where it looked."""
    candidates = _image_folder_candidates(json_path)
    for folder in candidates:
        if (folder / file_name).is_file():
            return folder
    raise DatasetError(f"{json_path}: cannot find the images; looked for {file_name} in "
                       + ", ".join(str(c) for c in candidates) + "; pass images=DIR")


def _class_order(data: dict, json_path: Path, classes: list[str] | None):
    """(class_names, category_ids, {category id: label})."""
    for index, c in enumerate(data["categories"]):
        if not (isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c["id"], bool)
                and isinstance(c.get("name"), (str, int))):
            raise DatasetError(f"{json_path}: categories[{index}]: expected {{id: int, name: str}}, "
                               f"got {str(c)[:80]}")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    if classes is None:
        names = [str(c["name"]) for c in categories]
        ids = [int(c["id"]) for c in categories]
    else:
        by_name = {str(c["name"]): int(c["id"]) for c in categories}
        missing = [n for n in classes if n not in by_name]
        if missing:
            raise DatasetError(f"{json_path}: classes {missing} are not categories of the json "
                               f"(categories: {sorted(by_name)})")
        names = list(classes)
        ids = [by_name[n] for n in classes]
    return names, ids, {cid: label for label, cid in enumerate(ids)}


def read_coco(json_path, images=None, modality: str = "rgb",
              classes: list[str] | None = None) -> DatasetRecords:
    """Read a COCO json. images: the image folder (default: looked for next to the json)."""
    json_path = Path(json_path)
    data = load_json(json_path)
    where = str(json_path)
    problems: list[Problem] = []
    class_names, category_ids, label_of = _class_order(data, json_path, classes)

    entries = {}
    for entry in data["images"]:
        image_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(image_id, int) or not isinstance(entry.get("file_name"), str):
            raise DatasetError(f"{json_path}: expected images as {{id: int, file_name: str, ...}}, "
                               f"got {str(entry)[:80]}")
        if image_id in entries:
            problems.append(Problem(where, "duplicate_id", f"image id {image_id} is listed twice "
                                    f"({entries[image_id]['file_name']}, {entry.get('file_name')});"
                                    " the second is ignored"))
            continue
        entries[image_id] = entry
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: expected the image folder of {json_path}")
    elif entries:
        folder = find_image_folder(json_path, next(iter(entries.values()))["file_name"])
    else:
        folder = json_path.parent

    names = [str(c["name"]) for c in data["categories"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(where, "duplicate_class_name", f"{names.count(name)} categories "
                                f"are named {name!r}; their boxes stay apart but share one name",
                                severity=WARNING))
    if entries and not data.get("annotations"):
        problems.append(Problem(where, "no_annotations", "'annotations' is empty: every image "
                                "is a negative", severity=WARNING))
    annotations = defaultdict(list)
    listed = data.get("annotations") or []
    if not isinstance(listed, list):
        raise DatasetError(f"{json_path}: 'annotations': expected a list of objects, got "
                           f"{type(listed).__name__}")
    for index, ann in enumerate(listed):
        if not isinstance(ann, dict):
            raise DatasetError(f"{json_path}: annotations[{index}]: expected an object "
                               f"{{id, image_id, category_id, bbox}}, got {str(ann)[:80]}")
        if ann.get("image_id") not in entries:
            problems.append(Problem(where, "dangling_annotation",
                                    f"annotation id {ann.get('id')} refers to image id "
                                    f"{ann.get('image_id')}, which is not in 'images'"))
            continue
        annotations[ann["image_id"]].append(ann)

    records = []
    for image_id, entry in entries.items():
        path = folder / entry["file_name"]
        if not path.is_file():
            problems.append(Problem(str(path), "missing_image",
                                    f"image id {image_id} of {json_path.name} has no file"))
            continue
        width, height = entry.get("width"), entry.get("height")
        if not all(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                     and value >= 0) for value in (width, height)):
            raise DatasetError(f"{json_path}: image id {image_id}: expected width and height as "
                               f"numbers (0 or absent: read from the image), got {width!r} x {height!r}")
        if not width or not height:
            size = try_image_size(path, problems)
            if size is None:
                continue
            problems.append(Problem(where, "missing_size", f"image id {image_id} has no "
                                    "width/height; read them from the image", severity=INFO))
            width, height = size
        boxes, labels, crowd, notes = [], [], [], []
        for ann in annotations.get(image_id, []):
            bbox = ann.get("bbox")
            note = f"annotation id {ann.get('id')} of {entry['file_name']}: "
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
                problems.append(Problem(where, "bad_label_line", f"{note}bbox {bbox!r} is not "
                                        "[x, y, width, height] numbers"))
                continue
            if ann.get("iscrowd", 0):
                crowd.append(bbox)
                continue
            if ann.get("category_id") not in label_of:
                problems.append(Problem(where, "unknown_class", f"{note}category_id "
                                        f"{ann.get('category_id')} is not a category "
                                        f"(ids: {category_ids})"))
                continue
            boxes.append(bbox)
            labels.append(label_of[ann["category_id"]])
            notes.append(note)
        xyxy = xywh_to_xyxy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        xyxy, labels = clean_boxes(xyxy, np.asarray(labels, dtype=np.int64), width, height,
                                   where, problems, notes=notes)
        ignore = xywh_to_xyxy(np.asarray(crowd, dtype=np.float32).reshape(-1, 4))
        ignore, _ = clean_boxes(ignore, np.zeros(len(ignore), dtype=np.int64), width, height,
                                where, problems,
                                notes=[f"crowd region of {entry['file_name']}: "] * len(ignore))
        records.append(ImageRecord(image_id=int(image_id), paths={modality: path},
                                   width=int(width), height=int(height), boxes=xyxy,
                                   labels=labels, ignore=ignore, label_file=json_path))
    return DatasetRecords(images=records, class_names=class_names, category_ids=category_ids,
                          modalities=[modality], problems=problems, source=where,
                          annotation_file=json_path)
