"""Pascal VOC xml -> `DatasetRecords`.

Layouts: `<root>/Annotations/*.xml` + `<root>/JPEGImages/` (+ `ImageSets/Main/<split>.txt`
listing the ids of a split), or a bare folder of xml files with `images=DIR`.
Boxes are read as given (`xmin ymin xmax ymax` pixels, no 1-based shift), as xyxy pixels.
`difficult=1` objects become ignore regions. Classes: the card's `classes`, or the sorted names
found in all the xml files of the folder (so that every split gets the same labels).
Problems: xml without `<size>` -> `missing_size` (info; the size is read from the image), object
of a class not in `classes` -> `unknown_class`, xml without an image -> `missing_image`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from detector.data.readers.common import clean_boxes, index_images, try_image_size
from detector.data.records import INFO, WARNING, DatasetRecords, ImageRecord, Problem
from detector.errors import DatasetError

_OBJECT_TAG = re.compile(rb"<object[\s>]")


def parse_xml(path: Path) -> tuple[ET.Element, list[int]]:
    """(root element, line number of each <object> in document order, for problem reports)."""
    try:
        text = path.read_bytes()
        root = ET.fromstring(text)
    except ET.ParseError as e:
        line = e.position[0] if e.position else "?"
        raise DatasetError(f"{path}:{line}: not valid XML: {e}") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the annotation: {e}") from e
    lines = [text.count(b"\n", 0, m.start()) + 1 for m in _OBJECT_TAG.finditer(text)]
    return root, lines


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    return child.text.strip() if child is not None and child.text else None


def _number(element: ET.Element | None, tag: str) -> float | None:
    value = _text(element, tag) if element is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def class_names_in(xml_files: list[Path]) -> list[str]:
    names = set()
    for path in xml_files:
        for obj in parse_xml(path)[0].iter("object"):
            name = _text(obj, "name")
            if name:
                names.add(name)
    return sorted(names)


def _read_ids(id_list: Path) -> list[str]:
    if not id_list.is_file():
        raise DatasetError(f"{id_list}: expected a VOC ImageSets list of image ids")
    # ImageSets/Main/<class>_<split>.txt lines carry a second column (1/-1); the id is the first
    return [line.split()[0] for line in id_list.read_text().splitlines() if line.strip()]


def read_voc(source, split: str | None = None, images=None, labels=None, id_list=None,
             modality: str = "rgb", classes: list[str] | None = None,
             only_images: bool = False) -> DatasetRecords:
    """Read Pascal VOC xml.

    - source: the VOC root (Annotations/, JPEGImages/, ImageSets/Main/) or a folder of xml
    - split: reads ImageSets/Main/<split>.txt (default: every xml file)
    - images: the image folder (default <root>/JPEGImages, or the xml folder itself)
    - labels: the xml folder (default <root>/Annotations, or source)
    - id_list: an explicit ImageSets file (overrides split)
    - only_images: read only the xml files of the images in `images` (LLVIP keeps one
      Annotations folder for train and test, and the image folder defines the split)
    """
    source = Path(source)
    xml_dir = Path(labels) if labels is not None else (
        source / "Annotations" if (source / "Annotations").is_dir() else source)
    if images is not None:
        image_dir = Path(images)
    elif (source / "JPEGImages").is_dir():
        image_dir = source / "JPEGImages"
    else:
        image_dir = xml_dir
    if not xml_dir.is_dir():
        raise DatasetError(f"{xml_dir}: expected a folder of VOC .xml annotations")
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: expected the image folder of {xml_dir}; pass images=DIR")
    all_xml = sorted(xml_dir.glob("*.xml"))
    if not all_xml:
        raise DatasetError(f"{xml_dir}: expected VOC .xml annotation files, found none")
    if id_list is None and split is not None:
        id_list = source / "ImageSets" / "Main" / f"{split}.txt"
    if id_list is not None:
        xml_files = [xml_dir / f"{stem}.xml" for stem in _read_ids(Path(id_list))]
    else:
        xml_files = all_xml
    problems: list[Problem] = []
    image_files = index_images(image_dir, problems)
    if only_images:
        xml_files = [xml_dir / f"{stem}.xml" for stem in image_files]
    names = list(classes) if classes is not None else class_names_in(all_xml)
    label_of = {name: i for i, name in enumerate(names)}
    if classes is None:  # names found in the files: a typo in the case makes a class of its own
        by_fold: dict[str, list[str]] = {}
        for name in names:
            by_fold.setdefault(name.casefold(), []).append(name)
        for same in (group for group in by_fold.values() if len(group) > 1):
            problems.append(Problem(str(xml_dir), "case_only_class_names", f"classes {same} differ "
                                    "only in case and are read as separate classes; fix the "
                                    "labels or give the classes", severity=WARNING))
    records = []
    for position, xml_path in enumerate(xml_files):
        if not xml_path.is_file() and only_images:
            record = _negative(image_files[xml_path.stem], xml_path, problems, modality)
        elif not xml_path.is_file():
            problems.append(Problem(str(xml_path), "missing_image", f"image id {xml_path.stem} "
                                    f"is listed in {id_list} but has no annotation file"))
            continue
        else:
            record = _read_one(xml_path, image_files, image_dir, label_of, problems, modality)
        if record is not None:
            record.image_id = position
            records.append(record)
    return DatasetRecords(images=records, class_names=names, category_ids=list(range(len(names))),
                          modalities=[modality], problems=problems, source=str(source))


def _negative(image_path: Path, xml_path: Path, problems: list[Problem], modality: str):
    """An image without an xml file: kept as a negative, reported as info."""
    size = try_image_size(image_path, problems)
    if size is None:
        return None
    problems.append(Problem(str(image_path), "image_without_label", f"no {xml_path.name} in "
                            f"{xml_path.parent}; read as a negative", severity=INFO))
    return ImageRecord(image_id=0, paths={modality: image_path}, width=size[0], height=size[1])


def _read_one(xml_path: Path, image_files: dict[str, Path], image_dir: Path,
              label_of: dict[str, int], problems: list[Problem], modality: str):
    root, object_lines = parse_xml(xml_path)
    file = str(xml_path)
    image_path = image_files.get(xml_path.stem)
    filename = _text(root, "filename")
    if image_path is None and filename and (image_dir / filename).is_file():
        image_path = image_dir / filename
    if image_path is None:
        problems.append(Problem(file, "missing_image", f"no image {xml_path.stem}.* or "
                                f"{filename} in {image_dir}"))
        return None
    size = root.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    if not width or not height:
        header = try_image_size(image_path, problems)
        if header is None:
            return None
        problems.append(Problem(file, "missing_size", "no <size> with width and height; read "
                                f"{header[0]}x{header[1]} from {image_path.name}", severity=INFO))
        width, height = header
    boxes, labels, ignore, lines, ignore_lines = [], [], [], [], []
    for number, obj in enumerate(root.iter("object"), start=1):
        line = object_lines[number - 1] if number <= len(object_lines) else None
        name = _text(obj, "name")
        box = obj.find("bndbox")
        corners = [_number(box, k) for k in ("xmin", "ymin", "xmax", "ymax")]
        if None in corners:
            problems.append(Problem(file, "bad_label_line", f"object {number} ({name}) has no "
                                    "<bndbox> with numeric xmin ymin xmax ymax", line=line))
            continue
        if _text(obj, "difficult") not in (None, "0"):
            ignore.append(corners)
            ignore_lines.append(line)
            continue
        if name not in label_of:
            problems.append(Problem(file, "unknown_class", f"object {number}: class {name!r} is "
                                    f"not one of {list(label_of)}", line=line))
            continue
        boxes.append(corners)
        labels.append(label_of[name])
        lines.append(line)
    width, height = int(width), int(height)
    xyxy, labels = clean_boxes(np.asarray(boxes, dtype=np.float32), np.asarray(labels), width,
                               height, file, problems, lines=lines)
    ignore, _ = clean_boxes(np.asarray(ignore, dtype=np.float32), np.zeros(len(ignore)), width,
                            height, file, problems, lines=ignore_lines)
    return ImageRecord(image_id=0, paths={modality: image_path}, width=width, height=height,
                       boxes=xyxy, labels=labels, ignore=ignore, label_file=xml_path)
