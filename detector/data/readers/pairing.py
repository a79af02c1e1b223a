"""Records of the first modality + folders of the others -> records of all modalities, paired by
file stem; classes a card declares as ignore turned into ignore regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.data.readers.common import index_images, stems_message
from detector.data.records import INFO, DatasetRecords, Problem
from detector.errors import DatasetError


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
        partners = index_images(folder, records.problems)
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
