"""The target-domain images of an adaptation run: a folder of images, or any dataset the data
layer reads (a card split, a COCO / YOLO / VOC path) with its labels dropped on reading.

    data = target_dataset("footage/thermal", modalities=["lwir"], augment=None, image_size=640)
    image, _ = data[0]      # [1,640,640] float 0..1, through the training transforms

The images go through the same loader, modalities (an RGB model converted to LWIR reads LWIR
target images as one grey channel) and transforms as the training data.
"""

from __future__ import annotations

from pathlib import Path

from detector.data.records import DatasetRecords, ImageRecord, Problem, empty_boxes
from detector.errors import ConfigError, DatasetError

WHERE = "train.adapt.target"


def _folder_records(folder: Path, images: dict[str, Path], modalities: list[str]) -> DatasetRecords:
    from detector.data.readers import try_image_size

    if len(modalities) != 1:
        raise ConfigError(f"{WHERE}: {folder} is a folder of images, one modality, but the model "
                          f"takes {', '.join(modalities)}; give a dataset card with a folder per "
                          "modality")
    problems: list[Problem] = []
    records = []
    for path in images.values():
        size = try_image_size(path, problems)
        if size is not None:
            records.append(ImageRecord(image_id=len(records), paths={modalities[0]: path},
                                       width=size[0], height=size[1]))
    return DatasetRecords(records, class_names=[], category_ids=[], modalities=list(modalities),
                          problems=problems, source=str(folder))


def read_target(source: str, modalities: list[str], split: str | None = None,
                format: str = "auto", images: str | None = None) -> DatasetRecords:
    """Records of the target images (no boxes, no labels, no ignore regions).

    `source` is a folder holding the images directly (then `modalities` must name one), or any
    dataset `read_dataset` takes. ConfigError for a folder without images."""
    from detector.data.readers import IMAGE_SUFFIXES, index_images, read_dataset

    path = Path(source).expanduser()
    if path.is_dir() and split is None and format == "auto" and images is None:
        found = index_images(path)
        if found:
            return _folder_records(path, found, modalities)
        if not any(child.is_dir() or child.suffix.lower() in (".json", ".yaml", ".yml", ".xml")
                   for child in path.iterdir()):
            raise ConfigError(f"{WHERE}: {path} holds no images (expected {', '.join(IMAGE_SUFFIXES)} "
                              "files in it, or a dataset)")
    try:
        records = read_dataset(source, split=split, format=format, modalities=list(modalities),
                               images=images)
    except DatasetError as e:
        raise DatasetError(f"{WHERE}: {e}") from e
    for record in records.images:  # the target's labels are never used
        record.boxes, record.ignore = empty_boxes(), empty_boxes()
        record.labels = record.labels[:0]
    records.problems = [p for p in records.problems if p.kind in ("corrupt_image", "missing_image")]
    return records


def target_dataset(source: str, modalities: list[str], augment, image_size: int | None,
                   split: str | None = None, format: str = "auto", images: str | None = None):
    """`read_target` as a DetectionDataset with the training transforms (`augment` as in the
    config's data.augment, `image_size` as model.image_size)."""
    from detector.data.dataset import DetectionDataset
    from detector.data.transforms import build_transforms

    records = read_target(source, modalities, split=split, format=format, images=images)
    if len(records) == 0:
        raise ConfigError(f"{WHERE}: {source}{f' (split {split})' if split else ''} has no images")
    transforms = build_transforms(augment, image_size=image_size, modalities=list(records.modalities))
    return DetectionDataset(records, transforms=transforms)
