"""data/mosaic.py: four samples tiled into one; the boxes follow the pixels on every modality."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detector.data.dataset import DetectionDataset
from detector.data.mosaic import Mosaic
from detector.data.readers import read_dataset
from detector.data.synthetic import make_synthetic_dataset
from detector.data.transforms import build_transforms
from detector.errors import ConfigError

SIZE = 64


def sample(value: int, box: list[int], height: int = SIZE, width: int = SIZE):
    """RGB (uint8) + LWIR (uint16) images with one rectangle of `value` at `box` (xyxy px) in
    both, on a dark ground; the rectangle's box labelled `value`."""
    x0, y0, x1, y1 = box
    rgb = np.full((height, width, 3), 20, np.uint8)
    rgb[y0:y1, x0:x1] = (value, 255 - value, value // 2)
    lwir = np.full((height, width, 1), 1000, np.uint16)
    lwir[y0:y1, x0:x1] = value * 200
    return ({"rgb": rgb, "lwir": lwir}, np.array([box], np.float32), np.array([value]),
            np.zeros((0, 4), np.float32))


def four_samples():
    return [sample(60 + 40 * i, [8 + 4 * i, 10 + 3 * i, 40 + 2 * i, 36 + 4 * i]) for i in range(4)]


@pytest.mark.parametrize("seed", range(6))
def test_every_kept_box_frames_its_own_rectangle_in_every_modality(seed):
    torch.manual_seed(seed)
    images, boxes, labels, ignore = Mosaic(p=1.0, min_visibility=0.3).combine(four_samples(), SIZE)
    check_mosaic(images, boxes, labels, ignore)


def test_mosaics_keep_boxes():
    torch.manual_seed(0)
    kept = [len(Mosaic(p=1.0).combine(four_samples(), SIZE)[1]) for _ in range(10)]
    assert sum(kept) >= 10, kept


def check_mosaic(images, boxes, labels, ignore):
    rgb, lwir = images["rgb"], images["lwir"]
    assert rgb.shape == (SIZE, SIZE, 3) and lwir.shape == (SIZE, SIZE, 1)
    assert rgb.dtype == np.uint8 and lwir.dtype == np.uint16 and len(ignore) == 0
    for (x0, y0, x1, y1), value in zip(boxes.round().astype(int), labels):
        # no resize (the samples are SIZE already): the box is exactly the rectangle's pixels
        assert (rgb[y0:y1, x0:x1, 0] == value).all() and (lwir[y0:y1, x0:x1, 0] == value * 200).all()
    # the same geometry on every channel: where RGB shows a rectangle, LWIR shows the same one
    for i, value in enumerate((60, 100, 140, 180)):
        shown = rgb[..., 0] == value
        np.testing.assert_array_equal(shown, lwir[..., 0] == value * 200)
        if value not in labels:  # dropped: less than min_visibility of it is in view
            assert shown.sum() < 0.3 * (32 - 2 * i) * (26 + i)


def test_boxes_are_scaled_with_their_image_and_clipped_to_the_window():
    torch.manual_seed(0)
    big = [sample(90, [20, 20, 100, 60], height=96, width=128) for _ in range(4)]  # scale 0.5
    images, boxes, labels, _ = Mosaic(p=1.0, min_visibility=0.0).combine(big, SIZE)
    assert len(boxes) >= 1 and (boxes >= 0).all() and (boxes <= SIZE).all()
    for x0, y0, x1, y1 in boxes.round().astype(int):
        patch = images["rgb"][y0:y1, x0:x1, 0]
        assert (patch == 90).mean() > 0.9  # resized edges blend with the ground by a pixel
    assert (boxes[:, 2] - boxes[:, 0]).max() <= 40 + 1e-3  # 80 px wide at scale 0.5


def test_a_box_mostly_outside_the_window_is_dropped():
    mosaic = Mosaic(p=1.0, min_visibility=0.5)
    clipped, keep = mosaic._clip(np.array([[-30.0, 0, 10, 10], [0, 0, 10, 10]], np.float32), SIZE)
    assert keep.tolist() == [False, True] and clipped[0].tolist() == [0, 0, 10, 10]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=0,
                                  size=(96, 80), seed=1)


def test_the_dataset_tiles_rgb_and_lwir_samples_with_the_boxes(shapes):
    """Through the recipe path: `augment: [{name: Mosaic}]` -> 4-channel samples whose LWIR is
    warm inside every box (the synthetic objects are warmer than the ground in LWIR)."""
    records = read_dataset(shapes, split="train")
    transforms = build_transforms([{"name": "Mosaic", "p": 1.0}], image_size=96,
                                  modalities=list(records.modalities))
    assert transforms.mosaic is not None and "Mosaic" in repr(transforms)
    dataset = DetectionDataset(records, transforms=transforms)
    plain = DetectionDataset(records, transforms=build_transforms([], image_size=96))
    torch.manual_seed(0)
    changed = 0
    for index in range(len(dataset)):
        image, target = dataset[index]
        changed += not torch.equal(image, plain[index][0])
        assert image.shape == (4, 96, 96)
        lwir = image[3]
        for x0, y0, x1, y1 in target["boxes"].round().int().tolist():
            inner = lwir[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
            if inner.numel():
                assert inner.mean() > 0.4, (index, x0, y0, x1, y1)  # objects 30000+ of 65535
    assert changed == len(dataset)  # every sample is a mosaic, not its record letterboxed


def test_configuration():
    with pytest.raises(ConfigError, match=r"augment\[1\]: Mosaic .* list it first"):
        build_transforms([{"name": "HorizontalFlip"}, {"name": "Mosaic"}])
    with pytest.raises(ConfigError, match=r"augment\[0\]: Mosaic has no argument 'scale'"):
        build_transforms([{"name": "Mosaic", "scale": 2}])
    with pytest.raises(ConfigError, match="Mosaic: p must be in 0..1"):
        build_transforms([{"name": "Mosaic", "p": 1.5}])
    assert build_transforms([{"name": "Mosaic"}], train=False).mosaic is None  # evaluation
    assert not Mosaic(p=0.0).applies()


def test_close_epochs_turns_the_mosaic_off_for_the_last_epochs():
    mosaic = Mosaic(close_epochs=2)
    assert [mosaic.open_at(epoch, 5) for epoch in range(5)] == [True, True, True, False, False]
    assert not Mosaic(close_epochs=5).open_at(0, 5) and Mosaic().open_at(9, 10)
    with pytest.raises(ConfigError, match=r"augment\[0\]: Mosaic: close_epochs must be a whole"):
        build_transforms([{"name": "Mosaic", "close_epochs": -1}])
    assert build_transforms([{"name": "Mosaic", "close_epochs": 3}]).mosaic.close_epochs == 3


@pytest.mark.parametrize("workers", [0, 1])
def test_fit_closes_the_mosaic_in_the_loader_workers_too(tmp_path, monkeypatch, workers):
    """Images of one flat grey each: a mosaic shows several greys, a whole image one. fit must
    tell the dataset the epoch and restart the (persistent) workers that hold a copy of it."""
    from detector.data.records import DatasetRecords, ImageRecord
    from detector.train import engine
    from toy_detector import ToyDetector

    folder = tmp_path / "flat"
    folder.mkdir()
    records = []
    for i in range(8):
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), np.full((32, 32, 3), 20 + 25 * i, np.uint8))
        records.append(ImageRecord(image_id=i, paths={"rgb": path}, width=32, height=32,
                                   boxes=np.array([[4, 4, 28, 28]], np.float32),
                                   labels=np.array([0]), ignore=np.zeros((0, 4), np.float32)))
    dataset = DetectionDataset(
        DatasetRecords(records, ["flat"], [1], modalities=["rgb"], source=str(folder)),
        build_transforms([{"name": "Mosaic", "p": 1.0, "close_epochs": 1}], image_size=32))
    greys = {}

    def spy(model, loader, *args, epoch, **kwargs):
        greys[epoch] = [len(torch.unique(image[0])) for images, _ in loader for image in images]
        return {"loss": 0.0}

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    engine.fit(ToyDetector(["flat"]), dataset, None, out_dir=tmp_path / "run", epochs=3,
               batch_size=4, workers=workers, show_progress=False, ema=False)
    assert sum(count > 1 for count in greys[0]) >= 6 and sum(count > 1 for count in greys[1]) >= 6
    assert greys[2] == [1] * 8  # the last epoch: whole images only
