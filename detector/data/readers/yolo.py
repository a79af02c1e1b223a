"""YOLO txt labels -> `DatasetRecords`.

Two layouts:
- an ultralytics data.yaml: `path` (relative to the yaml file), split keys (train/val/test) each
  naming an image folder relative to `path`, and `names` (a list, or a dict {index: name});
- an images folder and a labels folder (given, or found as images/ -> labels/ siblings, the
  ultralytics convention, or <root>/labels/<split>).

A label file holds one box per line: `class cx cy w h`, normalised to 0..1 by the image size
(a polygon `class x1 y1 x2 y2 ...` is read as its bounding box). Labels are the class indices,
`category_ids` are the same indices. Image sizes are read from the image headers.
Problems: empty file -> `empty_label_file` (info; the image is a negative), image without label
file -> `image_without_label` (info), label file without image -> `missing_image`, class index
out of range -> `unknown_class`, unparsable line -> `bad_label_line`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.boxes import cxcywh_to_xyxy, denormalize_xyxy
from detector.data.readers.common import is_data_yaml, clean_boxes, index_images, try_image_size
from detector.data.records import INFO, DatasetRecords, ImageRecord, Problem
from detector.errors import DatasetError
from detector.textfiles import read_text
from detector.yamlfiles import read_yaml

# data.yaml keys with a string value that are not split folders
NOT_SPLITS = ("path", "download", "yaml_file")


def read_names(yaml_path: Path, names) -> list[str]:
    """`names` of a data.yaml as a list: a list, or a dict {index: name} with indices 0..K-1."""
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            indices = sorted(int(k) for k in names)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{yaml_path}: names keys must be class indices 0..K-1") from e
        if indices != list(range(len(indices))):
            raise DatasetError(f"{yaml_path}: names must cover class indices 0..{len(indices) - 1}"
                               f" without gaps, got {indices}")
        return [str(names[k] if k in names else names[str(k)]) for k in indices]
    raise DatasetError(f"{yaml_path}: expected `names` as a list or a dict {{index: name}}")


def _labels_for(images: Path, root: Path) -> Path:
    """The labels folder ultralytics would use for an image folder, or <root>/labels/<split>."""
    parts = list(images.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        candidate = Path(*parts[:i], "labels", *parts[i + 1:])
        if candidate.is_dir():
            return candidate
    return root / "labels" / images.name


def resolve_data_yaml(yaml_path: Path, split: str | None) -> tuple[Path, Path, list[str]]:
    """(image folder, labels folder, class names) of one split of an ultralytics data.yaml.

    split is a key (train/val/test) or the name of the split's folder (train2017)."""
    data, _ = read_yaml(yaml_path, "data.yaml")
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetError(f"{yaml_path}: expected a YOLO data.yaml with `names`")
    names = read_names(yaml_path, data["names"])
    root = Path(data.get("path") or ".")
    root = root if root.is_absolute() else (yaml_path.parent / root)
    # train/val/test, or any other key naming a folder (a converted dataset keeps its split names)
    folders = {str(key): value for key, value in data.items()
               if isinstance(value, str) and key not in NOT_SPLITS}
    split = split or "train"
    key = split if split in folders else next(
        (k for k, v in folders.items() if Path(v).name == split), None)
    if key is None:
        raise DatasetError(f"{yaml_path}: no split {split!r}; it has "
                           + ", ".join(f"{k} ({v})" for k, v in folders.items()))
    images = root / folders[key]
    if images.is_file():
        raise DatasetError(f"{yaml_path}: {key}: {folders[key]} is a file; expected a folder of "
                           "images (image-list .txt files are not supported)")
    return images, _labels_for(images, root), names


def parse_label_file(path: Path, problems: list[Problem]):
    """Rows of a label file -> (classes [N] int64, boxes [N,4] cxcywh normalised, lines [N]).

    An empty file is an info problem; an unparsable line is a `bad_label_line` (skipped)."""
    classes, boxes, lines = [], [], []
    try:
        text = read_text(path, "label file")
    except DatasetError as e:  # not UTF-8: the file's boxes are unknown, the image is dropped
        problems.append(Problem(str(path), "bad_label_line", str(e).split(": ", 1)[-1],
                                line=getattr(e, "line", None)))
        return None
    if not text.strip():
        problems.append(Problem(str(path), "empty_label_file", "label file is empty; the image "
                                "is read as a negative (no objects)", severity=INFO))
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.append(Problem(str(path), "bad_label_line", f"expected numbers "
                                    f"`class cx cy w h`, got {line.strip()!r}", line=number))
            continue
        if len(values) == 5:
            box = values[1:]
        elif len(values) >= 7 and len(values) % 2 == 1:  # polygon: class x1 y1 x2 y2 ...
            xs, ys = values[1::2], values[2::2]
            box = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2,
                   max(xs) - min(xs), max(ys) - min(ys)]
        else:
            problems.append(Problem(str(path), "bad_label_line", f"expected 5 values `class cx "
                                    f"cy w h`, got {len(values)}", line=number))
            continue
        if values[0] != int(values[0]) or values[0] < 0:
            problems.append(Problem(str(path), "unknown_class", f"class {fields[0]} is not a "
                                    "class index (0, 1, ...)", line=number))
            continue
        classes.append(int(values[0]))
        boxes.append(box)
        lines.append(number)
    return (np.asarray(classes, dtype=np.int64),
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4), lines)


def read_yolo(source, split: str | None = None, images=None, labels=None,
              modality: str = "rgb", classes: list[str] | None = None) -> DatasetRecords:
    """Read YOLO labels.

    - source: a data.yaml, or a folder (with a data.yaml, or images/<split> + labels/<split>,
      or images/ + labels/)
    - images, labels: explicit folders (override what source says)
    - classes: class names (default: data.yaml `names`, or labels/classes.txt)
    """
    source = Path(source)
    names = classes
    if source.is_dir() and images is None and labels is None:
        yamls = sorted(p for p in source.glob("*.yaml") if is_data_yaml(p))
        if yamls:
            source = yamls[0]
    if source.is_file():
        yaml_images, yaml_labels, yaml_names = resolve_data_yaml(source, split)
        images = images or yaml_images
        labels = labels or yaml_labels
        names = names or yaml_names
    else:
        if images is None:
            images = source / "images" / split if split else source / "images"
        images = Path(images)
        if labels is None:
            labels = _labels_for(images, source)
    images, labels = Path(images), Path(labels)
    if not images.is_dir():
        raise DatasetError(f"{images}: expected a folder of images for the YOLO dataset {source}")
    if not labels.is_dir():
        raise DatasetError(f"{labels}: expected a folder of YOLO .txt labels for {images}; "
                           "pass labels=DIR")
    if names is None:
        names = _names_from_classes_txt(labels)
    return _read_folders(images, labels, names, modality, str(source))


def _names_from_classes_txt(labels: Path) -> list[str] | None:
    for candidate in (labels / "classes.txt", labels.parent / "classes.txt"):
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    return None


def _read_folders(images: Path, labels: Path, names: list[str] | None, modality: str,
                  source: str) -> DatasetRecords:
    problems: list[Problem] = []
    image_files = index_images(images, problems)
    label_files = {p.stem: p for p in sorted(labels.glob("*.txt")) if p.name != "classes.txt"}
    for stem in sorted(set(label_files) - set(image_files)):
        problems.append(Problem(str(label_files[stem]), "missing_image", f"no image {stem}.* for this "
                                f"label file in {images}"))
    parsed = {}
    for stem, path in label_files.items():
        if stem in image_files:
            parsed[stem] = parse_label_file(path, problems)
            if parsed[stem] is None:
                del parsed[stem]
                image_files.pop(stem)
    if names is None:  # nothing names the classes: the indices found are the classes
        top = max((int(c.max()) for c, _, _ in parsed.values() if len(c)), default=-1)
        names = [str(i) for i in range(top + 1)]
    records = []
    for position, (stem, path) in enumerate(image_files.items()):
        size = try_image_size(path, problems)
        if size is None:
            continue
        width, height = size
        label_path = label_files.get(stem)
        if label_path is None:
            problems.append(Problem(str(path), "image_without_label", f"no label file {stem}.txt "
                                    f"in {labels}; read as a negative", severity=INFO))
            classes = np.zeros(0, dtype=np.int64)
            boxes = np.zeros((0, 4), dtype=np.float32)
            lines = []
        else:
            classes, boxes, lines = parsed[stem]
        known = classes < len(names)
        for i in np.flatnonzero(~known):
            problems.append(Problem(str(label_path), "unknown_class", f"class {classes[i]} is out "
                                    f"of range: {len(names)} classes (0..{len(names) - 1})",
                                    line=lines[i]))
        xyxy = denormalize_xyxy(cxcywh_to_xyxy(boxes[known]), width, height)
        xyxy, labels_kept = clean_boxes(xyxy, classes[known], width, height,
                                        str(label_path or path), problems,
                                        lines=[line for line, k in zip(lines, known) if k])
        records.append(ImageRecord(image_id=position, paths={modality: path}, width=width,
                                   height=height, boxes=xyxy, labels=labels_kept,
                                   label_file=label_path))
    return DatasetRecords(images=records, class_names=list(names),
                          category_ids=list(range(len(names))), modalities=[modality],
                          problems=problems, source=source)
