"""`read_dataset`: any dataset (card name, COCO json, YOLO, Pascal VOC) -> `DatasetRecords`.

The format readers (coco_reader, yolo_reader, voc_reader) turn one format into records for the
first modality; this module resolves the source, detects the format, pairs the other modalities
by file stem, and holds the checks every reader shares (box cleaning, image lookup by stem).

Box conventions: records hold float32 [N,4] xyxy pixels; boxes past the border are clipped and
reported (`box_outside_image`), boxes with zero or negative width/height are dropped and
reported (`zero_size_box`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from detector.boxes import clip_xyxy, degenerate_xyxy, outside_image_xyxy
from detector.data.records import INFO, DatasetRecords, Problem
from detector.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FORMATS = ("coco", "yolo", "voc")
# how many stems a missing_pair message lists before it says "... and N more"
_LISTED_STEMS = 10


# --- helpers the format readers share -------------------------------------------------------

def index_images(folder: Path) -> dict[str, Path]:
    """stem -> image path for every image file directly in `folder` (sorted, first suffix wins)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels.

    Raises OSError (unreadable file) or PIL.UnidentifiedImageError (not an image)."""
    with Image.open(path) as image:
        return image.size


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


def pair_modalities(records: DatasetRecords,
                    modality_dirs: dict[str, Path | None]) -> DatasetRecords:
    """Give every record a path per modality, matching file stems in each modality's folder.

    The records come with a path for the first modality only. An image whose partner is missing
    is dropped with one `missing_pair` problem per folder listing the stems; partner images
    that match no record are reported the same way (they are not in the dataset)."""
    names = list(modality_dirs)
    records.modalities = names
    if len(names) < 2:
        return records
    first = names[0]
    kept = list(records.images)
    for name in names[1:]:
        folder = modality_dirs[name]
        if not folder.is_dir():
            raise DatasetError(f"{folder}: expected a folder of {name} images (modality {name!r})")
        partners = index_images(folder)
        missing = [r.stem for r in kept if r.stem not in partners]
        if missing:
            records.problems.append(Problem(
                str(folder), "missing_pair",
                f"{len(missing)} {first} image(s) have no {name} partner with the same stem; "
                f"dropped: {stems_message(missing)}"))
        kept = [r for r in kept if r.stem in partners]
        for record in kept:
            record.paths[name] = partners[record.stem]
        stems = {r.stem for r in records.images}
        lonely = sorted(s for s in partners if s not in stems)
        if lonely:
            records.problems.append(Problem(
                str(folder), "missing_pair",
                f"{len(lonely)} {name} image(s) have no {first} partner (or no usable label); not "
                f"used: {stems_message(lonely)}", severity=INFO))
    records.images = kept
    return records


# --- source resolution and format detection --------------------------------------------------

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


def is_data_yaml(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # not ours to judge here: the folder is just not a YOLO dataset
    return isinstance(data, dict) and "names" in data and "format" not in data


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
    from detector.data import cards, coco_reader, voc_reader, yolo_reader

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
        records = coco_reader.read_coco(json_path, images=images,
                                        modality=next(iter(modality_dirs)))
    elif kind == "yolo":
        records = yolo_reader.read_yolo(path, split=split, images=images, labels=labels,
                                        modality=next(iter(modality_dirs)))
    else:
        records = voc_reader.read_voc(path, split=split, images=images, labels=labels,
                                      modality=next(iter(modality_dirs)))
    records.source = source_text
    # the first modality's folder is the reader's; pairing only looks at the others
    return pair_modalities(records, modality_dirs)


def _modality_dirs(modalities) -> dict[str, Path | None]:
    """{name: folder or None}; the first modality's folder comes from the reader."""
    if modalities is None:
        return {"rgb": None}
    if isinstance(modalities, dict):
        names = list(modalities)
        # the first modality's folder is `images` (or what the source says)
        return {name: None for name in names[:1]} | {
            name: Path(modalities[name]) if modalities[name] else _missing_folder(name)
            for name in names[1:]}
    return {name: None for name in modalities[:1]} | {
        name: _missing_folder(name) for name in modalities[1:]}


def _missing_folder(name: str):
    raise DatasetError(f"modality {name!r} needs a folder: pass modalities as {{name: folder}} "
                       "or use a dataset card with `modalities:`")


def move_classes_to_ignore(records: DatasetRecords, names: list[str], where: str) -> DatasetRecords:
    """Turn the boxes of the classes `names` (e.g. HIT-UAV's DontCare) into ignore regions and
    drop those classes, relabelling the rest to stay 0-based and contiguous."""
    if not names:
        return records
    unknown = [n for n in names if n not in records.class_names]
    if unknown:
        raise DatasetError(f"{where}: ignore_classes {unknown} are not classes of the dataset "
                           f"(classes: {records.class_names})")
    dropped = [records.class_names.index(n) for n in names]
    kept = [i for i in range(len(records.class_names)) if i not in dropped]
    new_label = np.full(len(records.class_names), -1, dtype=np.int64)
    new_label[kept] = np.arange(len(kept))
    for record in records.images:
        to_ignore = np.isin(record.labels, dropped)
        if to_ignore.any():
            record.ignore = np.concatenate([record.ignore, record.boxes[to_ignore]]).astype(np.float32)
        record.boxes = record.boxes[~to_ignore]
        record.labels = new_label[record.labels[~to_ignore]]
    records.ignore_category_ids += [records.category_ids[i] for i in dropped]
    records.class_names = [records.class_names[i] for i in kept]
    records.category_ids = [records.category_ids[i] for i in kept]
    return records
