"""Data layer: dataset readers (COCO json, YOLO txt, Pascal VOC, dataset cards) -> records,
records -> tensors (`DetectionDataset`), augmentation, and the synthetic RGB+LWIR dataset."""

from detector.data.records import DatasetRecords, ImageRecord, Problem

__all__ = ["DatasetRecords", "ImageRecord", "Problem", "read_dataset"]


def __getattr__(name):
    # Imported on use so that `import detector.data.records` stays light for the readers.
    if name == "read_dataset":
        from detector.data.readers import read_dataset

        return read_dataset
    if name == "DetectionDataset":
        from detector.data.dataset import DetectionDataset

        return DetectionDataset
    raise AttributeError(name)
