"""`read_dataset`: any dataset (card name, COCO json, YOLO, Pascal VOC) -> `DatasetRecords`.

The format readers (coco.py, yolo.py, voc.py) turn one format into records for the first
modality; this module resolves the source and detects the format; pairing.py pairs the other
modalities by file stem; common.py holds the checks every reader shares (box cleaning, image
lookup by stem). Imports go one way: this module -> cards -> the format readers -> common.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.data import cards
from detector.data.readers.coco import read_coco
from detector.data.readers.common import (
    IMAGE_SUFFIXES, clean_boxes, image_size, index_images, is_data_yaml, try_image_size,
)
from detector.data.readers.pairing import _modality_dirs, move_classes_to_ignore, pair_modalities
from detector.data.readers.voc import read_voc
from detector.data.readers.yolo import read_yolo
from detector.data.records import DatasetRecords
from detector.errors import DatasetError

FORMATS = ("coco", "yolo", "voc")
# what callers may import from here besides read_dataset (the readers' shared helpers)
__all__ = ["FORMATS", "IMAGE_SUFFIXES", "clean_boxes", "detect_format", "image_size",
           "index_images", "is_data_yaml", "move_classes_to_ignore", "pair_modalities",
           "read_coco", "read_dataset", "read_voc", "read_yolo", "try_image_size"]


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DatasetError(f"{path}: cannot read YAML: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def _find_coco_json(folder: Path, split: str | None) -> Path | None:
    """The COCO json of `split` in folder/annotations or folder (or the only one there is)."""
    candidates = []
    for where in (folder / "annotations", folder):
        if where.is_dir():
            candidates.extend(sorted(where.glob("*.json")))
    if split is not None:
        for path in candidates:
            if path.stem in (split, f"instances_{split}", f"coco_{split}"):
                return path
        return None
    return candidates[0] if len(candidates) == 1 else None


def detect_format(source: Path, split: str | None = None, images=None, labels=None) -> str:
    """'coco', 'yolo', 'voc' or 'card' for a path; DatasetError saying what was looked for."""
    if source.is_file():
        if source.suffix.lower() == ".json":
            return "coco"
        if source.suffix.lower() in (".yaml", ".yml"):
            data = _read_yaml(source)
            if "format" in data:
                return "card"
            if "names" in data:
                return "yolo"
            raise DatasetError(f"{source}: expected a dataset card (with 'format') or a YOLO "
                               "data.yaml (with 'names')")
    elif source.is_dir():
        if labels is not None:
            return "voc" if any(Path(labels).glob("*.xml")) else "yolo"
        if (source / "Annotations").is_dir() and (source / "JPEGImages").is_dir():
            return "voc"
        # LLVIP keeps VOC Annotations/ beside a YOLO data.yaml: the data.yaml says more
        if any(is_data_yaml(p) for p in source.glob("*.yaml")) or (
                (source / "images").is_dir() and (source / "labels").is_dir()):
            return "yolo"
        if (source / "Annotations").is_dir() or any(source.glob("*.xml")):
            return "voc"
        if _find_coco_json(source, split) is not None:
            return "coco"
    looked = ("a dataset card datasets/<name>.yaml or card .yaml file, a COCO .json file or "
              "annotations/<split>.json, a YOLO data.yaml or images/ + labels/ folders, a VOC "
              "Annotations/ folder or folder of .xml")
    if not source.exists():
        raise DatasetError(f"{source}: no such file or dataset card; looked for {looked}")
    raise DatasetError(f"{source}: cannot tell the dataset format; looked for {looked}; "
                       "pass format=coco|yolo|voc")


def read_dataset(source, split: str | None = None, format: str = "auto",
                 modalities: list[str] | dict[str, str] | None = None, images=None,
                 labels=None) -> DatasetRecords:
    """Read a dataset split into `DatasetRecords`.

    - source: a dataset card name (datasets/<name>.yaml) or path, a COCO json, a YOLO data.yaml
      or folder, a VOC folder (Annotations/ + JPEGImages/) or a bare folder of xml files
    - split: the split to read (card split, data.yaml key or folder, VOC ImageSets list, COCO
      annotations/<split>.json)
    - format: "auto", "coco", "yolo" or "voc"
    - modalities: names of the modalities to read, in channel-stacking order. For a card, a
      subset of its modalities (default: all); for a path, {name: image folder} or a list whose
      first entry names the modality of `images` (default ["rgb"])
    - images, labels: explicit image / label folders (labels: YOLO txt or VOC xml folder)
    Raises DatasetError when the source cannot be read at all; everything else wrong with the
    data is a `Problem` in the records.
    """
    if format not in ("auto", "card") + FORMATS:
        raise DatasetError(f"unknown dataset format {format!r}; expected auto, "
                           + ", ".join(FORMATS))
    source_text = str(source)
    path = Path(source).expanduser()
    card_path = cards.find_card(source_text)
    if card_path is not None and not (path.exists() and path.suffix.lower() not in (".yaml", ".yml")):
        card = cards.load_card(card_path)
        return cards.read_card(card, split=split, modalities=modalities, images=images,
                               labels=labels)
    if not path.exists() and not any(sep in source_text for sep in ("/", "\\", ".")):
        raise DatasetError(f"{source_text}: no such dataset card in {cards.cards_folder()} "
                           f"(cards: {', '.join(cards.card_names())}) and no such path")
    if not path.exists():
        detect_format(path)  # raises with what it looked for
    kind = detect_format(path, split, images, labels) if format == "auto" else format
    images = Path(images) if images is not None else None
    labels = Path(labels) if labels is not None else None
    modality_dirs = _modality_dirs(modalities)
    if kind == "card":
        return cards.read_card(cards.load_card(path), split=split, modalities=modalities,
                               images=images, labels=labels)
    if kind == "coco":
        json_path = path if path.is_file() else _find_coco_json(path, split)
        if json_path is None:
            raise DatasetError(f"{path}: expected a COCO json (annotations/{split or '<split>'}"
                               ".json or instances_<split>.json)")
        records = read_coco(json_path, images=images,
                                        modality=next(iter(modality_dirs)))
    elif kind == "yolo":
        records = read_yolo(path, split=split, images=images, labels=labels,
                                        modality=next(iter(modality_dirs)))
    else:
        records = read_voc(path, split=split, images=images, labels=labels,
                                      modality=next(iter(modality_dirs)))
    records.source = source_text
    # the first modality's folder is the reader's; pairing only looks at the others
    return pair_modalities(records, modality_dirs)
