"""detector.data.synthetic: deterministic, readable through its card, objects warm in LWIR."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from detector.data.dataset import DetectionDataset
from detector.data.readers import read_dataset
from detector.data.synthetic import CATEGORY_IDS, CLASSES, make_synthetic_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), num_train=8, num_val=4)


def data_files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".yaml"}


def test_same_seed_gives_identical_bytes_other_seed_does_not(synthetic, tmp_path):
    again = make_synthetic_dataset(tmp_path / "again", num_train=8, num_val=4)
    first, second = data_files(synthetic.parent), data_files(again.parent)
    assert len(first) == 2 + 2 * 12  # two json files, an rgb and an lwir image per image
    assert first == second
    other = data_files(make_synthetic_dataset(tmp_path / "other", num_train=8, num_val=4,
                                              seed=1).parent)
    assert other.keys() == first.keys()
    assert all(other[name] != first[name] for name in first if name.suffix == ".png")
    # the val images do not depend on how many train images there are
    fewer = data_files(make_synthetic_dataset(tmp_path / "fewer", num_train=3, num_val=4).parent)
    val = [name for name in first if "val" in name.parts or name.name == "val.json"]
    assert len(val) == 9 and all(fewer[name] == first[name] for name in val)


def test_card_reads_back_with_both_modalities(synthetic):
    card = yaml.safe_load(synthetic.read_text())
    assert card["format"] == "coco" and card["modalities"] == {"rgb": "rgb", "lwir": "lwir"}
    assert set(card["splits"]) == {"train", "val"}
    coco = json.loads((synthetic.parent / "annotations" / "train.json").read_text())
    assert [c["id"] for c in coco["categories"]] == CATEGORY_IDS == [1, 2, 3]
    for split, count in (("train", 8), ("val", 4)):
        records = read_dataset(str(synthetic), split=split)
        assert len(records) == count and records.errors == []
        assert records.modalities == ["rgb", "lwir"]
        assert records.class_names == CLASSES and records.category_ids == CATEGORY_IDS
        annotations = json.loads((synthetic.parent / "annotations" / f"{split}.json").read_text())
        assert records.num_boxes == len(annotations["annotations"]) > 0
        for record in records.images:
            assert record.paths["rgb"].stem == record.paths["lwir"].stem
            assert record.paths["rgb"].parent.name == split
            if len(record.boxes):
                assert record.labels.min() >= 0 and record.labels.max() <= 2
                assert record.boxes[:, 2].max() <= 160 and record.boxes[:, 3].max() <= 128


def test_thermal_is_16_bit_and_objects_are_warmer_than_the_ground(synthetic):
    records = read_dataset(str(synthetic), split="train")
    checked = 0
    for record in records.images:
        lwir = cv2.imread(str(record.paths["lwir"]), cv2.IMREAD_UNCHANGED)
        rgb = cv2.imread(str(record.paths["rgb"]), cv2.IMREAD_UNCHANGED)
        assert lwir.dtype == np.uint16 and lwir.shape == (128, 160)
        assert rgb.dtype == np.uint8 and rgb.shape == (128, 160, 3)
        ground = np.ones(lwir.shape, bool)
        for x0, y0, x1, y1 in record.boxes.astype(int):
            ground[y0:y1, x0:x1] = False
        ground_hot = np.percentile(lwir[ground], 99)
        for x0, y0, x1, y1 in record.boxes:
            # the middle of the box is inside every shape (circle, square, upward triangle)
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            assert lwir[cy - 1:cy + 2, cx - 1:cx + 2].mean() > ground_hot + 3000
            checked += 1
    assert checked >= 8


def test_dataset_stacks_the_synthetic_pair_into_four_channels(synthetic):
    records = read_dataset(str(synthetic), split="val")
    image, target = DetectionDataset(records)[0]
    assert image.shape == (4, 128, 160)
    # thermal channel scaled by 65535: ground ~0.25-0.35, objects ~0.45-0.7
    assert 0.15 < float(image[3].median()) < 0.4
    if len(target["boxes"]):
        x0, y0, x1, y1 = target["boxes"][0].tolist()
        assert float(image[3, int((y0 + y1) / 2), int((x0 + x1) / 2)]) > 0.4


def test_too_small_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        make_synthetic_dataset(tmp_path, size=(40, 40))
