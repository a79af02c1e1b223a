"""Write `DatasetRecords` as a COCO json or as YOLO txt labels (what `detector data convert` does).

Layouts written under `out` (one split per call):
- images: out/images/<split>/ for one modality; out/<modality>/<split>/ for several
  (copied, or symlinked with link=True), keeping the file names
- COCO: out/annotations/<split>.json; boxes as [x, y, w, h] pixels; `category_ids` of the records;
  ignore regions as iscrowd=1 annotations (COCO needs a category: the first one is used, the
  evaluators ignore crowd regions whatever their category)
- YOLO: out/labels/<split>/<stem>.txt (`class cx cy w h` normalised, 7 decimals: < 0.01 px error
  up to 100k px images) and out/data.yaml (`path: .`, one key per split, `names`); YOLO txt has
  no ignore regions, so they are not written (the count is returned)
- both: out/card.yaml, a dataset card that reads every written split back, modalities included.

Every file a call will write is claimed first (detector/outputs.py): nothing is written into the
records' own files or folders, nor over a file of `out` that the toolkit did not write, unless
`overwrite`. `read_folders` names more folders the output must stay out of (the data set's root).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from detector.boxes import normalize_xyxy, xyxy_to_cxcywh, xyxy_to_xywh
from detector.data.records import DatasetRecords
from detector.errors import DatasetError
from detector.outputs import claim_outputs


def _image_folder(records: DatasetRecords, modality: str, split: str) -> str:
    return f"images/{split}" if len(records.modalities) == 1 else f"{modality}/{split}"


def _image_names(records: DatasetRecords, split: str) -> list[str]:
    """The image files a split writes, relative to `out`; DatasetError on two images of one
    modality with the same file name (the second would replace the first)."""
    names = []
    for modality in records.modalities:
        seen = {}
        for record in records.images:
            source = Path(record.paths[modality])
            if source.name in seen:
                raise DatasetError(f"{source}: same file name as {seen[source.name]}; the "
                                   f"images of one split must have distinct names")
            seen[source.name] = source
            names.append(f"{_image_folder(records, modality, split)}/{source.name}")
    return names


def _read_yaml_written(path: Path) -> dict | None:
    """A card.yaml / data.yaml written before into `out` (merged with the new split), or None."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # replaced (`--overwrite` allowed it): nothing of it is kept
    return data if isinstance(data, dict) else None


def _claim(records: DatasetRecords, out: Path, names: list[str], overwrite: bool,
           read_folders) -> None:
    """Claim `names` (and the images) under `out`, refusing the records' own files and folders."""
    reads = [path for r in records.images for path in r.paths.values()]
    reads += [r.label_file for r in records.images if r.label_file is not None]
    folders = {Path(p).parent for p in reads} | {Path(f) for f in read_folders}
    claim_outputs(out, names, flag="--out", reads=reads, read_folders=sorted(folders),
                  overwrite=overwrite)


def write_images(records: DatasetRecords, out: Path, split: str, link: bool = False) -> None:
    """Copy (or symlink) every modality's image into its folder under `out`."""
    for modality in records.modalities:
        folder = out / _image_folder(records, modality, split)
        folder.mkdir(parents=True, exist_ok=True)
        for record in records.images:
            source = Path(record.paths[modality])
            target = folder / source.name
            if target.exists() or target.is_symlink():
                target.unlink()
            if link:
                os.symlink(source.resolve(), target)
            else:
                shutil.copy2(source, target)


def _update_card(out: Path, records: DatasetRecords, split: str, format: str,
                 entry: dict) -> None:
    """Add this split to out/card.yaml (created on the first split)."""
    path = out / "card.yaml"
    card = _read_yaml_written(path)
    if not card or card.get("format") != format:
        card = {"format": format, "root": str(out.resolve()), "classes": list(records.class_names),
                "modalities": {m: ("images" if len(records.modalities) == 1 else m)
                               for m in records.modalities},
                "splits": {}}
    card["splits"][split] = entry
    path.write_text(yaml.safe_dump(card, sort_keys=False))


def write_coco(records: DatasetRecords, out, split: str = "train", link: bool = False,
               overwrite: bool = False, read_folders=()) -> Path:
    """Write a split as out/annotations/<split>.json (+ images, + card.yaml); returns the json."""
    out = Path(out)
    _claim(records, out, [*_image_names(records, split), f"annotations/{split}.json", "card.yaml"],
           overwrite, read_folders)
    write_images(records, out, split, link)
    categories = [{"id": int(cid), "name": name, "supercategory": name}
                  for name, cid in zip(records.class_names, records.category_ids)]
    images, annotations = [], []
    for record in records.images:
        first = Path(record.paths[records.modalities[0]])
        images.append({"id": int(record.image_id), "file_name": first.name,
                       "width": int(record.width), "height": int(record.height)})
        rows = [(box, records.category_ids[int(label)], 0)
                for box, label in zip(xyxy_to_xywh(record.boxes), record.labels)]
        rows += [(box, records.category_ids[0] if records.category_ids else 0, 1)
                 for box in xyxy_to_xywh(record.ignore)]
        for box, category_id, crowd in rows:
            x, y, w, h = (round(float(v), 3) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": int(record.image_id),
                                "category_id": int(category_id), "bbox": [x, y, w, h],
                                "area": round(w * h, 3), "iscrowd": crowd})
    path = out / "annotations" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    # the card's modality folders are images/ (one modality) or <modality>/ (several)
    _update_card(out, records, split, "coco", {"images": split,
                                               "annotations": f"annotations/{split}.json"})
    return path


def write_yolo(records: DatasetRecords, out, split: str = "train", link: bool = False,
               overwrite: bool = False, read_folders=()) -> tuple[Path, int]:
    """Write a split as out/labels/<split>/*.txt + out/data.yaml (+ images, + card.yaml).

    Returns (data.yaml path, number of ignore regions left out)."""
    out = Path(out)
    labels = [f"labels/{split}/{Path(r.paths[records.modalities[0]]).stem}.txt"
              for r in records.images]
    _claim(records, out, [*_image_names(records, split), *labels, "data.yaml", "card.yaml"],
           overwrite, read_folders)
    write_images(records, out, split, link)
    labels_dir = out / "labels" / split
    labels_dir.mkdir(parents=True, exist_ok=True)
    left_out = 0
    for record in records.images:
        first = Path(record.paths[records.modalities[0]])
        boxes = xyxy_to_cxcywh(normalize_xyxy(record.boxes.astype(np.float64), record.width,
                                              record.height))
        lines = [f"{int(label)} " + " ".join(f"{v:.7f}" for v in box)
                 for box, label in zip(boxes, record.labels)]
        (labels_dir / f"{first.stem}.txt").write_text("".join(line + "\n" for line in lines))
        left_out += len(record.ignore)
    data_path = out / "data.yaml"
    data = _read_yaml_written(data_path)
    if not data or data.get("names") != list(records.class_names):
        data = {"path": ".", "names": list(records.class_names)}
    data[split] = _image_folder(records, records.modalities[0], split)
    data_path.write_text(yaml.safe_dump(data, sort_keys=False))
    _update_card(out, records, split, "yolo", {"images": split,
                                               "labels": f"labels/{split}"})
    return data_path, left_out
