"""`read_dataset`: any dataset (card name, COCO json, YOLO, Pascal VOC) -> `DatasetRecords`.

The format readers (coco.py, yolo.py, voc.py) turn one format into records for the first
modality; this module resolves the source (a path, or a dataset card parsed by data/cards.py),
detects the format and dispatches through one table, READERS; pairing.py pairs the other
modalities by file stem; common.py holds the checks every reader shares (box cleaning, image
lookup by stem). Imports go one way: this module -> cards, the format readers -> common.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
from detector.yamlfiles import read_yaml_mapping

# what callers may import from here besides read_dataset (the readers' shared helpers)
__all__ = ["FORMATS", "IMAGE_SUFFIXES", "READERS", "Reading", "clean_boxes", "detect_format",
           "image_size", "index_images", "is_data_yaml", "move_classes_to_ignore",
           "pair_modalities", "read_card", "read_coco", "read_dataset", "read_voc", "read_yolo",
           "try_image_size"]


@dataclass(frozen=True)
class Reading:
    """What to read of one split, whichever the format: `source` is the COCO json, or the YOLO /
    VOC root folder or data.yaml; `images` / `labels` the first modality's folders (None: where
    the format keeps them); `id_list` and `only_images` are VOC's (an ImageSets file; read only
    the xml files that have an image)."""

    source: Path
    modality: str
    split: str | None = None
    images: Path | None = None
    labels: Path | None = None
    classes: list[str] | None = None
    id_list: Path | None = None
    only_images: bool = False


# format name -> its reader; the one dispatch for paths and dataset cards alike
READERS: dict[str, Callable[[Reading], DatasetRecords]] = {
    "coco": lambda r: read_coco(r.source, images=r.images, modality=r.modality, classes=r.classes),
    "yolo": lambda r: read_yolo(r.source, split=r.split, images=r.images, labels=r.labels,
                                modality=r.modality, classes=r.classes),
    "voc": lambda r: read_voc(r.source, split=r.split, images=r.images, labels=r.labels,
                              id_list=r.id_list, modality=r.modality, classes=r.classes,
                              only_images=r.only_images),
}
FORMATS = tuple(READERS)


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
            data, _ = read_yaml_mapping(source, "dataset file")
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
        return read_card(cards.load_card(card_path), split=split, modalities=modalities,
                         images=images, labels=labels)
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
        return read_card(cards.load_card(path), split=split, modalities=modalities,
                         images=images, labels=labels)
    source = path
    if kind == "coco" and not path.is_file():
        source = _find_coco_json(path, split)
        if source is None:
            raise DatasetError(f"{path}: expected a COCO json (annotations/{split or '<split>'}"
                               ".json or instances_<split>.json)")
    first = next(iter(modality_dirs))
    records = READERS[kind](Reading(source, first, split=split, images=images, labels=labels))
    records.source = source_text
    # the first modality's folder is the reader's; pairing only looks at the others
    return pair_modalities(records, modality_dirs)


def read_card(card: cards.DatasetCard, split: str | None = None, modalities=None, images=None,
              labels=None) -> DatasetRecords:
    """Read one split of a dataset card into records (see `read_dataset`).

    `modalities` picks a subset of the card's modalities (list of names); `images` / `labels`
    override the split's folders for the first modality."""
    if card.format not in READERS:
        raise DatasetError(f"{card.path}: format {card.format!r} is not one of {', '.join(FORMATS)}")
    if split is None:
        if len(card.splits) != 1:
            raise DatasetError(f"{card.path}: which split? the card has "
                               f"{', '.join(card.splits)}; pass split= (--split)")
        split = next(iter(card.splits))
    if split not in card.splits:
        raise DatasetError(f"{card.path}: no split {split!r}; the card has "
                           f"{', '.join(card.splits)}")
    names = list(card.modalities)
    if modalities is not None:
        wanted = list(modalities)
        unknown = [m for m in wanted if m not in card.modalities]
        if unknown:
            raise DatasetError(f"{card.path}: no modality {unknown[0]!r}; the card has "
                               f"{', '.join(names)}")
        names = wanted
    root = card.root_path()
    if not root.is_dir():
        raise DatasetError(f"{card.path}: root folder {root} does not exist")
    entry = card.splits[split]
    image_dirs = {m: root / card.modalities[m] / entry.get("images", ".") for m in names}
    first = names[0]
    if images is not None:
        image_dirs[first] = Path(images)

    def at_root(key):
        return root / entry[key] if key in entry else None

    source, label_dir = root, Path(labels) if labels is not None else at_root("labels")
    if card.format == "coco":
        if "annotations" not in entry:
            raise DatasetError(f"{card.path}: split {split!r} needs `annotations:` (a COCO json)")
        source = at_root("annotations")
    elif card.format == "voc":
        label_dir = label_dir or at_root("annotations")
    records = READERS[card.format](Reading(
        source, first, images=image_dirs[first], labels=label_dir, classes=card.classes,
        id_list=at_root("list"), only_images="list" not in entry))
    records.source = f"{card.name}:{split}"
    records = move_classes_to_ignore(records, card.ignore_classes, str(card.path))
    return pair_modalities(records, image_dirs)
