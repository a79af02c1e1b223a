"""`DetectionDataset`: records -> (image tensor, target) samples for training and evaluation.

    dataset = DetectionDataset(records, transforms=build_transforms(augment, image_size=640),
                               channels=["rgb", "lwir"])
    image, target = dataset[0]        # image: FloatTensor [4,H,W] in 0..1: R, G, B, thermal

Each modality is loaded with OpenCV at its channel count (rgb: 3 channels in RGB order, lwir: 1),
kept at its bit depth until `images.to_float` (uint8 / 255, uint16 / 65535), optionally
augmented + letterboxed by the transforms, then stacked along channels in the order of
`channels`. The target is

    {"boxes": [M,4] float32 xyxy px of the returned image, "labels": [M] int64 0-based,
     "ignore": [K,4] float32 xyxy px, "index": i, "image_id": record.image_id,
     "orig_size": (H0, W0), "scale": (sx, sy), "pad": (px, py)}

with returned = original * scale + pad for each coordinate. With transforms=None the image keeps
its original size (scale 1, pad 0): evaluation feeds original images and the detector resizes
internally. When the transforms hold a Mosaic (data/mosaic.py) a sample may be four records
tiled into one before the transforms run; its scale and pad then describe the mosaic, not
record i (training reads only boxes and labels).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from detector.data.images import load_modality, modality_channels, to_float
from detector.data.records import DatasetRecords
from detector.errors import DatasetError


class DetectionDataset(Dataset):
    """Map-style dataset over `DatasetRecords`.

    - transforms: a callable as built by `detector.data.transforms.build_transforms`, or None
    - channels: modality names in stacking order (default: records.modalities); each must be a
      modality of every record
    - long_side: without transforms, resize each image (aspect kept) so its longest side is this
      many pixels, with OpenCV on the stored pixels (evaluation of detectors that do the same)
    `in_channels` is the number of stacked channels (rgb 3 + lwir 1 = 4)."""

    def __init__(self, records: DatasetRecords, transforms=None, channels: list[str] | None = None,
                 long_side: int | None = None):
        self.records = records
        self.transforms = transforms
        # Without transforms: resize so the longest side is `long_side` (aspect kept, no padding)
        # with OpenCV on the stored pixels, before the float conversion; target "scale" maps back.
        self.long_side = long_side
        self.mosaic_open = True  # set_epoch closes it for a Mosaic's last `close_epochs` epochs
        self.channels = list(channels) if channels is not None else list(records.modalities)
        if not self.channels:
            raise DatasetError(f"{records.source}: no modalities to load")
        self.in_channels = sum(modality_channels(m) for m in self.channels)
        for record in records.images:
            missing = [m for m in self.channels if m not in record.paths]
            if missing:
                raise DatasetError(
                    f"{records.source}: image {record.image_id} ({record.stem}) has no "
                    f"{missing[0]} file; its modalities are {', '.join(record.paths)} "
                    f"(channels asked for: {', '.join(self.channels)})")

    @property
    def class_names(self) -> list[str]:
        return list(self.records.class_names)

    def __len__(self) -> int:
        return len(self.records.images)

    def load_images(self, index: int) -> dict[str, np.ndarray]:
        """{modality: [H,W,C] uint8/uint16 array} of one record, as stored on disk."""
        record = self.records.images[index]
        images = {}
        for modality in self.channels:
            path = record.paths[modality]
            image = load_modality(path, modality)
            if image.shape[:2] != (record.height, record.width):
                raise DatasetError(
                    f"{path}: the {modality} image is {image.shape[1]}x{image.shape[0]} but its "
                    f"labels are for {record.width}x{record.height} (modality_size_mismatch; "
                    "see `detector data check`)")
            images[modality] = image
        return images

    def set_epoch(self, epoch: int, epochs: int) -> bool:
        """Tell the dataset where a run of `epochs` is (0-based `epoch`); True when that changed
        what it yields (a Mosaic closing), so loader workers holding a copy must be restarted."""
        mosaic = getattr(self.transforms, "mosaic", None)
        wanted = mosaic is None or mosaic.open_at(epoch, epochs)
        changed = wanted != self.mosaic_open
        self.mosaic_open = wanted
        return changed

    def __getitem__(self, index: int):
        record = self.records.images[index]
        mosaic = getattr(self.transforms, "mosaic", None)
        if mosaic is not None and self.mosaic_open and mosaic.applies():
            samples = [(self.load_images(i), self.records.images[i].boxes,
                        self.records.images[i].labels, self.records.images[i].ignore)
                       for i in mosaic.indices(index, len(self))]
            images, boxes, labels, ignore = mosaic.combine(samples, self.transforms.image_size)
        else:
            images = self.load_images(index)
            boxes, labels, ignore = record.boxes, record.labels, record.ignore
        scale, pad = (1.0, 1.0), (0.0, 0.0)
        if self.transforms is None:
            if self.long_side is not None:
                images, scale = _resize_long_side(images, self.long_side)
                boxes, ignore = _scaled(boxes, scale), _scaled(ignore, scale)
            floats = {m: to_float(image) for m, image in images.items()}
        else:
            out = self.transforms(images, boxes, labels, ignore)
            floats, boxes, labels, ignore = out["images"], out["boxes"], out["labels"], out["ignore"]
            scale, pad = out["scale"], out["pad"]
        stacked = np.concatenate([floats[m] for m in self.channels], axis=2)
        image = torch.from_numpy(np.ascontiguousarray(stacked.transpose(2, 0, 1), np.float32))
        target = {
            "boxes": torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels, np.int64).reshape(-1)),
            "ignore": torch.as_tensor(np.asarray(ignore, np.float32).reshape(-1, 4)),
            "index": index,
            "image_id": record.image_id,
            "orig_size": (record.height, record.width),
            "scale": (float(scale[0]), float(scale[1])),
            "pad": (float(pad[0]), float(pad[1])),
        }
        return image, target


def _resize_long_side(images: dict, size: int) -> tuple[dict, tuple[float, float]]:
    """{modality: image} resized so the longest side is `size` (INTER_AREA when shrinking, as
    ultralytics' and YOLOv5's validation loaders; INTER_LINEAR when enlarging), and the exact
    (sx, sy) after rounding."""
    import cv2

    height, width = next(iter(images.values())).shape[:2]
    ratio = size / max(height, width)
    new_width, new_height = max(1, round(width * ratio)), max(1, round(height * ratio))
    if (new_width, new_height) == (width, height):
        return images, (1.0, 1.0)
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = {}
    for modality, image in images.items():
        out = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
        resized[modality] = out[:, :, None] if out.ndim == 2 else out
    return resized, (new_width / width, new_height / height)


def _scaled(boxes, scale: tuple[float, float]) -> np.ndarray:
    factor = np.array([scale[0], scale[1]] * 2, np.float32)
    return np.asarray(boxes, np.float32).reshape(-1, 4) * factor


def collate_detection(batch):
    """[(image [C,H,W], target), ...] -> (list of images, list of targets).

    Lists, not a stacked tensor: images of a batch may differ in size (detectors resize and
    batch them internally)."""
    images = [sample[0] for sample in batch]
    targets = [sample[1] for sample in batch]
    return images, targets
