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
rejected with the nearest valid key. This module parses and checks a card; reading the data it
names is `data.readers.read_card` (the format is checked there, against the readers' table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import detector
from detector.errors import DatasetError, suggestion
from detector.yamlfiles import read_yaml_mapping

CARD_KEYS = ("format", "root", "splits", "classes", "modalities", "ignore_classes",
             "description", "url", "license")
SPLIT_KEYS = ("images", "labels", "annotations", "list")


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
        if path.is_file() and "format" in read_yaml_mapping(path, "dataset card")[0]:
            return path
        return None
    if os.sep in name_or_path or "/" in name_or_path:
        return None
    named = cards_folder() / f"{name_or_path}.yaml"
    return named if named.is_file() else None


def card_names() -> list[str]:
    return sorted(p.stem for p in cards_folder().glob("*.yaml"))


def _reject_unknown(keys, valid, where: str) -> None:
    for key in keys:
        if key not in valid:
            raise DatasetError(f"{where}: unknown key '{key}'; {suggestion(key, valid)}")


def load_card(path: Path) -> DatasetCard:
    """Parse and validate a card; DatasetError naming the file and the key on any mistake."""
    path = Path(path)
    data, _ = read_yaml_mapping(path, "dataset card")
    _reject_unknown(data, CARD_KEYS, str(path))
    for key in ("format", "root", "splits"):
        if key not in data:
            raise DatasetError(f"{path}: missing key {key!r}")
    if not isinstance(data["format"], str):
        raise DatasetError(f"{path}: format must be a name (coco, yolo or voc)")
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
