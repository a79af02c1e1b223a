"""The files and folders a data set is read from: what a command's outputs must stay out of
(detector/outputs.py's rule 1)."""

from __future__ import annotations

from pathlib import Path


def source_paths(source: str) -> tuple[list[Path], list[Path]]:
    """(files, folders) of a data source before it is read: a card (the card file and its root
    folder), a COCO json or YOLO data.yaml (the file and its folder), or a folder."""
    from detector.data.cards import find_card, load_card

    path = Path(source).expanduser()
    card_path = find_card(str(source))
    if card_path is not None:  # a card may live anywhere; its root is the data set's folder
        return [card_path], [Path(load_card(card_path).root_path())]
    if path.is_dir():
        return [], [path]
    if path.is_file():  # a COCO json or a YOLO data.yaml: its folder is the data set's
        return [path], [path.parent]
    return [], []


def input_paths(records, source: str) -> tuple[list[Path], list[Path]]:
    """(files, folders) a command read `records` (DatasetRecords) from, given the `source` it
    was read with (a card name or path, a COCO json, a YOLO data.yaml, a folder): every image
    and label file, the folders holding them, the card or annotation file, and the data set's
    root folder."""
    files = [path for r in records.images for path in r.paths.values()]
    files += [r.label_file for r in records.images if r.label_file is not None]
    folders = {Path(p).parent for p in files}
    source_files, source_folders = source_paths(source)
    return files + source_files, sorted(folders | set(source_folders))
