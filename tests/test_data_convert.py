"""`detector data convert` and detector.data.writers: coco -> yolo -> coco keeps the boxes."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from detector.cli import main
from detector.data.readers import read_dataset
from detector.data.writers import write_coco, write_yolo


def make_coco(root: Path) -> Path:
    """Odd image sizes, sub-pixel boxes, non-contiguous ids, a crowd region, a negative."""
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate([(333, 217), (1021, 769), (64, 48)], start=1):
        path = root / "images" / "train" / f"im{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height)).save(path)
        images.append({"id": i * 10, "file_name": path.name, "width": width, "height": height})
        for _ in range(4 if i < 3 else 0):
            x, y = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
            w, h = rng.uniform(1, width / 2), rng.uniform(1, height / 2)
            annotations.append({"id": len(annotations) + 1, "image_id": i * 10,
                                "category_id": int(rng.choice([5, 11])),
                                "bbox": [round(v, 3) for v in (x, y, w, h)], "iscrowd": 0})
    annotations.append({"id": 99, "image_id": 10, "category_id": 5, "bbox": [1, 2, 30, 40],
                        "iscrowd": 1})
    path = root / "annotations" / "train.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 11, "name": "dog"}, {"id": 5, "name": "cat"}]}))
    return path


def assert_same_boxes(a, b, atol=0.01):
    assert len(a) == len(b) and a.class_names == b.class_names
    for ra, rb in zip(a.images, b.images):
        assert ra.paths["rgb"].name == rb.paths["rgb"].name
        assert (ra.width, ra.height) == (rb.width, rb.height)
        np.testing.assert_allclose(rb.boxes, ra.boxes, atol=atol)
        assert rb.labels.tolist() == ra.labels.tolist()


def test_coco_yolo_coco_round_trip(tmp_path):
    original = read_dataset(make_coco(tmp_path / "src"))
    assert original.num_boxes == 8
    data_yaml, left_out = write_yolo(original, tmp_path / "yolo", "train")
    assert left_out == 1  # the crowd region: YOLO txt has no ignore regions
    assert yaml.safe_load(data_yaml.read_text())["names"] == ["cat", "dog"]
    as_yolo = read_dataset(tmp_path / "yolo", split="train")
    assert_same_boxes(original, as_yolo)
    json_path = write_coco(as_yolo, tmp_path / "coco", "train")
    back = read_dataset(json_path)
    assert_same_boxes(original, back)
    assert back.problems == []


def test_coco_writer_keeps_ids_and_ignore_regions(tmp_path):
    original = read_dataset(make_coco(tmp_path / "src"))
    back = read_dataset(write_coco(original, tmp_path / "out", "train"))
    assert back.category_ids == [5, 11]
    assert [r.image_id for r in back.images] == [10, 20, 30]
    np.testing.assert_allclose(back.images[0].ignore, original.images[0].ignore)
    assert len(back.images[2].boxes) == 0  # negatives stay


def test_convert_command_writes_a_card_that_reads_back(tmp_path, capsys):
    make_coco(tmp_path / "src")
    code = main(["data", "convert", str(tmp_path / "src" / "annotations" / "train.json"),
                 "--to", "yolo", "--out", str(tmp_path / "out"), "--split", "train", "--link"])
    assert code == 0
    assert "train" in capsys.readouterr().out
    assert (tmp_path / "out" / "images" / "train" / "im1.png").is_symlink()
    card_read = read_dataset(tmp_path / "out" / "card.yaml", split="train")
    assert card_read.num_boxes == 8 and card_read.class_names == ["cat", "dog"]


def test_convert_keeps_modalities(tmp_path):
    for folder in ("visible", "infrared"):
        for stem in ("a", "b"):
            path = tmp_path / "src" / folder / "train" / f"{stem}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 30)).save(path)
    (tmp_path / "src" / "labels" / "train").mkdir(parents=True)
    for stem in ("a", "b"):
        (tmp_path / "src" / "labels" / "train" / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    card = tmp_path / "pairs.yaml"
    card.write_text(f"format: yolo\nroot: {tmp_path / 'src'}\nclasses: [person]\n"
                    "modalities: {rgb: visible, lwir: infrared}\n"
                    "splits: {train: {images: train, labels: labels/train}}\n")
    assert main(["data", "convert", str(card), "--to", "coco", "--out", str(tmp_path / "out")]) == 0
    back = read_dataset(tmp_path / "out" / "card.yaml", split="train")
    assert back.modalities == ["rgb", "lwir"] and len(back) == 2
    assert back.images[0].paths["lwir"] == tmp_path / "out" / "lwir" / "train" / "a.jpg"
    np.testing.assert_allclose(back.images[0].boxes, [[10, 7.5, 30, 22.5]])


@pytest.mark.shared_data
def test_shared_coco128_json_round_trip(shared_data, tmp_path):
    original = read_dataset("coco128_json", split="train2017")
    assert main(["data", "convert", "coco128_json", "--to", "yolo", "--out",
                 str(tmp_path / "yolo"), "--link"]) == 0
    assert main(["data", "convert", str(tmp_path / "yolo"), "--split", "train2017", "--to",
                 "coco", "--out", str(tmp_path / "coco"), "--link"]) == 0
    back = read_dataset(tmp_path / "coco" / "annotations" / "train2017.json")
    assert back.num_boxes == 929
    assert_same_boxes(original, back)
