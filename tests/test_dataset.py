"""detector.data.dataset: channel stacking, targets, letterbox, collate, broken inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from detector.data.dataset import DetectionDataset, collate_detection
from detector.data.records import DatasetRecords, ImageRecord
from detector.data.transforms import build_transforms
from detector.errors import DatasetError

HEIGHT, WIDTH = 24, 32


def write_pair(folder: Path, stem: str, marker=(3, 5)) -> dict[str, Path]:
    """An 8-bit RGB PNG with a red marker pixel (x, y) and a 16-bit LWIR PNG (marker 40000)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = marker
    bgr = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    bgr[y, x] = (0, 0, 255)
    lwir = np.full((HEIGHT, WIDTH), 10000, np.uint16)
    lwir[y, x] = 40000
    paths = {"rgb": folder / f"{stem}_rgb.png", "lwir": folder / f"{stem}_ir.png"}
    cv2.imwrite(str(paths["rgb"]), bgr)
    cv2.imwrite(str(paths["lwir"]), lwir)
    return paths


def make_records(tmp_path: Path, count: int = 2) -> DatasetRecords:
    images = []
    for index in range(count):
        paths = write_pair(tmp_path, f"img{index}")
        images.append(ImageRecord(
            image_id=100 + index, paths=paths, width=WIDTH, height=HEIGHT,
            boxes=np.array([[1, 2, 11, 12], [20, 4, 30, 20]], np.float32),
            labels=np.array([0, 2], np.int64),
            ignore=np.array([[14, 14, 18, 18]], np.float32)))
    return DatasetRecords(images=images, class_names=["a", "b", "c"], category_ids=[1, 2, 3],
                          modalities=["rgb", "lwir"], source="test")


def test_rgb_and_lwir_stack_into_four_channels_in_order(tmp_path):
    dataset = DetectionDataset(make_records(tmp_path))
    assert dataset.in_channels == 4 and len(dataset) == 2
    image, target = dataset[1]
    assert image.shape == (4, HEIGHT, WIDTH) and image.dtype == torch.float32
    assert image[0, 5, 3] == pytest.approx(1.0) and image[1, 5, 3] == 0 and image[2, 5, 3] == 0
    assert image[0, 0, 0] == pytest.approx(40 / 255)
    assert image[3, 5, 3] == pytest.approx(40000 / 65535, abs=1e-7)
    assert image[3, 0, 0] == pytest.approx(10000 / 65535, abs=1e-7)
    assert target["index"] == 1 and target["image_id"] == 101
    assert target["orig_size"] == (HEIGHT, WIDTH)
    assert target["scale"] == (1.0, 1.0) and target["pad"] == (0.0, 0.0)
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["boxes"].tolist() == [[1, 2, 11, 12], [20, 4, 30, 20]]
    assert target["labels"].tolist() == [0, 2]
    assert target["ignore"].tolist() == [[14, 14, 18, 18]]


def test_channels_pick_and_order_the_modalities(tmp_path):
    records = make_records(tmp_path)
    image, _ = DetectionDataset(records, channels=["lwir", "rgb"])[0]
    assert image.shape[0] == 4
    assert image[0, 5, 3] == pytest.approx(40000 / 65535, abs=1e-7)
    assert image[1, 5, 3] == pytest.approx(1.0)
    lwir_only = DetectionDataset(records, channels=["lwir"])
    assert lwir_only.in_channels == 1 and lwir_only[0][0].shape == (1, HEIGHT, WIDTH)
    rgb_only = DetectionDataset(records, channels=["rgb"])
    assert rgb_only[0][0].shape == (3, HEIGHT, WIDTH)


def test_letterbox_targets_map_back_to_the_original(tmp_path):
    records = make_records(tmp_path)
    dataset = DetectionDataset(records, transforms=build_transforms([], 64, ["rgb", "lwir"]))
    image, target = dataset[0]
    assert image.shape == (4, 64, 64)
    sx, sy = target["scale"]
    px, py = target["pad"]
    assert (sx, sy) == (2.0, 2.0) and (px, py) == (0.0, 8.0)
    back = (target["boxes"] - torch.tensor([px, py, px, py])) / torch.tensor([sx, sy, sx, sy])
    torch.testing.assert_close(back, torch.from_numpy(records.images[0].boxes))
    torch.testing.assert_close(target["ignore"], torch.tensor([[28.0, 36.0, 36.0, 44.0]]))
    # the marker pixel (3, 5) becomes the 2x2 block at x 6..7, y 18..19 in rgb and in lwir
    for channel in (0, 3):
        y, x = divmod(int(image[channel, 8:56].argmax()), 64)  # rows 8..55: image, not padding
        assert 6 <= x <= 7 and 18 <= y + 8 <= 19


def test_flip_moves_boxes_and_every_channel(tmp_path):
    records = make_records(tmp_path, count=1)
    transforms = build_transforms([{"name": "HorizontalFlip", "p": 1.0}], None, ["rgb", "lwir"])
    image, target = DetectionDataset(records, transforms=transforms)[0]
    x = WIDTH - 1 - 3
    assert image[0, 5, x] == pytest.approx(1.0)
    assert image[3, 5, x] == pytest.approx(40000 / 65535, abs=1e-7)
    torch.testing.assert_close(target["boxes"], torch.tensor([[21.0, 2, 31, 12], [2, 4, 12, 20]]))


def test_collate_keeps_lists_of_differently_sized_images(tmp_path):
    records = make_records(tmp_path)
    small = tmp_path / "small"
    records.images[1].paths = write_pair(small, "s")
    dataset = DetectionDataset(records)
    images, targets = collate_detection([dataset[0], dataset[1]])
    assert isinstance(images, list) and len(images) == 2 and len(targets) == 2
    assert [t["index"] for t in targets] == [0, 1]
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_detection)
    batch_images, batch_targets = next(iter(loader))
    assert [tuple(i.shape) for i in batch_images] == [(4, HEIGHT, WIDTH)] * 2
    assert [t["image_id"] for t in batch_targets] == [100, 101]


def test_dataloader_workers_draw_different_augmentations(tmp_path):
    # albumentations keeps its own random state; each worker must get its own seed
    records = make_records(tmp_path, count=1)
    records.images = records.images * 4
    transforms = build_transforms([{"name": "Affine", "rotate": [-40, 40], "p": 1.0}], None,
                                  ["rgb", "lwir"])
    loader = DataLoader(DetectionDataset(records, transforms=transforms), batch_size=1,
                        num_workers=2, collate_fn=collate_detection)
    samples = [images[0] for images, _ in loader]  # worker 0: 0, 2; worker 1: 1, 3
    assert not torch.equal(samples[0], samples[1])
    assert not torch.equal(samples[2], samples[3])


def test_missing_modality_and_size_mismatch_are_errors(tmp_path):
    records = make_records(tmp_path)
    del records.images[1].paths["lwir"]
    with pytest.raises(DatasetError, match=r"image 101 \(img1_rgb\) has no lwir file"):
        DetectionDataset(records)
    assert DetectionDataset(records, channels=["rgb"])[1][0].shape[0] == 3

    records = make_records(tmp_path)
    wrong = tmp_path / "wrong.png"
    cv2.imwrite(str(wrong), np.zeros((10, 10), np.uint16))
    records.images[0].paths["lwir"] = wrong
    dataset = DetectionDataset(records)
    with pytest.raises(DatasetError, match=f"{wrong}: the lwir image is 10x10 but its labels "
                                           f"are for {WIDTH}x{HEIGHT}"):
        dataset[0]


def test_corrupt_image_names_the_file(tmp_path):
    records = make_records(tmp_path)
    records.images[0].paths["rgb"].write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=f"{records.images[0].paths['rgb']}: corrupt image"):
        DetectionDataset(records)[0]


def test_unknown_channel_name_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="unknown modality 'depth'"):
        DetectionDataset(make_records(tmp_path), channels=["depth"])


def test_long_side_resizes_the_stored_pixels_and_maps_back(tmp_path):
    """Evaluation loading for detectors that resize first (YOLO): OpenCV resize on the 8- and
    16-bit pixels, aspect kept, no padding; `_to_original` undoes it exactly."""
    from detector.evaluation.coco import _to_original

    records = make_records(tmp_path)
    dataset = DetectionDataset(records, long_side=2 * WIDTH)
    image, target = dataset[0]
    assert image.shape == (4, 2 * HEIGHT, 2 * WIDTH) and image.dtype == torch.float32
    assert target["scale"] == (2.0, 2.0) and target["pad"] == (0.0, 0.0)
    torch.testing.assert_close(target["boxes"], torch.from_numpy(records.images[0].boxes) * 2)
    # the 16-bit LWIR keeps its full range (10000 / 65535 background) through the resize
    assert abs(float(image[3, 0, 0]) - 10000 / 65535) < 1e-6
    back = _to_original({"boxes": target["boxes"], "scores": torch.ones(2),
                         "labels": torch.zeros(2, dtype=torch.int64)}, target)
    np.testing.assert_allclose(back["boxes"], records.images[0].boxes, atol=1e-5)
    # the same size: nothing resized
    same, same_target = DetectionDataset(records, long_side=WIDTH)[0]
    assert same.shape == (4, HEIGHT, WIDTH) and same_target["scale"] == (1.0, 1.0)
