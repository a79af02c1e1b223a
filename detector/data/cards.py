"""Dataset cards: a YAML file that says where a dataset lives and how to read it.

    # datasets/llvip_mini.yaml
    format: yolo                      # coco | yolo | voc
    root: llvip_mini                  # relative to $DETECTOR_DATA unless absolute
    modalities: {rgb: visible, lwir: infrared}   # one folder per modality (default {rgb: .})
    classes: [person]                 # optional where the format names them
    ignore_classes: []                # classes whose boxes become ignore regions (DontCare)
    splits:
      train: {images: train, labels: labels/train}
      test: {images: test, labels: labels/test}

The image folder of modality m in split s is root / modalities[m] / splits[s].images. Split keys:
`images`; `labels` (YOLO txt folder, relative to root); `annotations` (COCO json file, or VOC
Annotations folder, relative to root); `list` (VOC ImageSets file of ids, relative to root).
Cards are found by name in <repo>/datasets/<name>.yaml, or given as a path. Unknown keys are
rejected with the nearest valid key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import detector
from detector.data.records import DatasetRecords
from detector.errors import DatasetError, suggestion

CARD_KEYS = ("format", "root", "splits", "classes", "modalities", "ignore_classes",
             "description", "url", "license")
SPLIT_KEYS = ("images", "labels", "annotations", "list")
FORMATS = ("coco", "yolo", "voc")


def cards_folder() -> Path:
    """<repo>/datasets, where the shipped cards live."""
    return Path(detector.__file__).resolve().parents[1] / "datasets"


def data_root() -> Path | None:
    value = os.environ.get("DETECTOR_DATA")
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class DatasetCard:
    """A parsed card; paths are resolved against DETECTOR_DATA when the card is read."""

    path: Path
    format: str
    root: str
    splits: dict[str, dict[str, str]]
    classes: list[str] | None = None
    modalities: dict[str, str] = field(default_factory=lambda: {"rgb": "."})
    ignore_classes: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    def root_path(self) -> Path:
        root = Path(self.root).expanduser()
        if root.is_absolute():
            return root
        base = data_root()
        if base is None:
            raise DatasetError(f"{self.path}: root {self.root!r} is relative to DETECTOR_DATA, "
                               "which is not set; export DETECTOR_DATA=/folder/of/datasets")
        return base / root


def find_card(name_or_path: str) -> Path | None:
    """The card file for a name (datasets/<name>.yaml) or a path to a card; None otherwise."""
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        if path.is_file() and "format" in _load_yaml(path):
            return path
        return None
    if os.sep in name_or_path or "/" in name_or_path:
        return None
    named = cards_folder() / f"{name_or_path}.yaml"
    return named if named.is_file() else None


def card_names() -> list[str]:
    return sorted(p.stem for p in cards_folder().glob("*.yaml"))


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DatasetError(f"{path}: cannot read the dataset card: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def _reject_unknown(keys, valid, where: str) -> None:
    for key in keys:
        if key not in valid:
            raise DatasetError(f"{where}: unknown key '{key}'; {suggestion(key, valid)}")


def load_card(path: Path) -> DatasetCard:
    """Parse and validate a card; DatasetError naming the file and the key on any mistake."""
    path = Path(path)
    data = _load_yaml(path)
    _reject_unknown(data, CARD_KEYS, str(path))
    for key in ("format", "root", "splits"):
        if key not in data:
            raise DatasetError(f"{path}: missing key {key!r}")
    if data["format"] not in FORMATS:
        raise DatasetError(f"{path}: format {data['format']!r} is not one of {', '.join(FORMATS)}")
    splits = data["splits"]
    if not isinstance(splits, dict) or not splits:
        raise DatasetError(f"{path}: splits must be a mapping split -> {{images, labels, ...}}")
    for name, entry in splits.items():
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: split {name!r} must be a mapping with keys "
                               f"{', '.join(SPLIT_KEYS)}")
        _reject_unknown(entry, SPLIT_KEYS, f"{path}: split {name!r}")
    modalities = data.get("modalities") or {"rgb": "."}
    if not isinstance(modalities, dict):
        raise DatasetError(f"{path}: modalities must be a mapping name -> folder, "
                           "e.g. {rgb: visible, lwir: infrared}")
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DatasetError(f"{path}: classes must be a list of names")
    return DatasetCard(path=path, format=data["format"], root=str(data["root"]),
                       splits={str(k): {kk: str(vv) for kk, vv in v.items()} for k, v in splits.items()},
                       classes=classes, modalities={str(k): str(v) for k, v in modalities.items()},
                       ignore_classes=list(data.get("ignore_classes") or []),
                       description=str(data.get("description", "")))


def read_card(card: DatasetCard, split: str | None = None, modalities=None, images=None,
              labels=None) -> DatasetRecords:
    """Read one split of a card into records (see `read_dataset`).

    `modalities` picks a subset of the card's modalities (list of names); `images` / `labels`
    override the split's folders for the first modality."""
    from detector.data.readers.coco import read_coco
    from detector.data.readers.pairing import move_classes_to_ignore, pair_modalities
    from detector.data.readers.voc import read_voc
    from detector.data.readers.yolo import read_yolo

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

    label_dir = Path(labels) if labels is not None else at_root("labels")
    if card.format == "coco":
        if "annotations" not in entry:
            raise DatasetError(f"{card.path}: split {split!r} needs `annotations:` (a COCO json)")
        records = read_coco(at_root("annotations"), images=image_dirs[first],
                                        modality=first, classes=card.classes)
    elif card.format == "yolo":
        records = read_yolo(root, images=image_dirs[first], labels=label_dir,
                                        modality=first, classes=card.classes)
    else:
        records = read_voc(root, images=image_dirs[first],
                                      labels=label_dir or at_root("annotations"),
                                      id_list=at_root("list"), modality=first,
                                      classes=card.classes, split=None,
                                      only_images="list" not in entry)
    records.source = f"{card.name}:{split}"
    records = move_classes_to_ignore(records, card.ignore_classes, str(card.path))
    return pair_modalities(records, image_dirs)
