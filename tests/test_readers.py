"""read_dataset: COCO json, YOLO, Pascal VOC, dataset cards, RGB+LWIR pairing.

Small datasets are generated into tmp_path; the counts of ../shared/data come from
../shared/README.md.
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.data.readers import read_dataset
from detector.errors import DatasetError


def write_image(path: Path, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


def kinds(records):
    return Counter(p.kind for p in records.problems)


def only(records, kind):
    found = [p for p in records.problems if p.kind == kind]
    assert len(found) == 1, records.problems
    return found[0]


# --- COCO json ---------------------------------------------------------------------------------

def write_coco(root: Path, annotations, images=None, categories=None) -> Path:
    images = images if images is not None else [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    for entry in images:
        write_image(root / "images" / "train" / entry["file_name"])
    categories = categories or [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    path = root / "annotations" / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def test_coco_noncontiguous_ids_crowd_and_negatives(tmp_path):
    path = write_coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 8], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [30, 30, 10, 10], "iscrowd": 1},
    ])
    records = read_dataset(path)  # images found at images/train next to annotations/
    assert records.class_names == ["cat", "dog"] and records.category_ids == [3, 7]
    first, negative = records.images
    np.testing.assert_allclose(first.boxes, [[10, 5, 30, 15], [0, 0, 8, 8]])
    assert first.labels.tolist() == [1, 0] and first.labels.dtype == np.int64
    np.testing.assert_allclose(first.ignore, [[30, 30, 40, 40]])
    assert len(negative.boxes) == 0 and negative.image_id == 2
    assert records.problems == []


def test_coco_ids_from_zero_split_folder_and_ignore_classes(tmp_path):
    write_coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 5, 5]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [2, 2, 6, 6]},
    ], categories=[{"id": 0, "name": "Person"}, {"id": 1, "name": "DontCare"}])
    records = read_dataset(tmp_path, split="train")
    assert records.class_names == ["Person", "DontCare"] and records.category_ids == [0, 1]
    card = tmp_path / "card.yaml"
    card.write_text(f"format: coco\nroot: {tmp_path}\nignore_classes: [DontCare]\n"
                    "splits:\n  train: {images: images/train, annotations: annotations/train.json}\n")
    records = read_dataset(card, split="train")
    assert records.class_names == ["Person"] and records.category_ids == [0]
    assert records.num_boxes == 1
    np.testing.assert_allclose(records.images[1].ignore, [[2, 2, 8, 8]])


def test_coco_dangling_annotation(tmp_path):
    path = write_coco(tmp_path, [{"id": 9, "image_id": 42, "category_id": 3, "bbox": [1, 1, 5, 5]}])
    problem = only(read_dataset(path), "dangling_annotation")
    assert problem.file == str(path) and "image id 42" in problem.message


def test_coco_box_outside_is_clipped_and_zero_size_dropped(tmp_path):
    path = write_coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [50, 40, 30, 30]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0, 10]},
        {"id": 3, "image_id": 1, "category_id": 99, "bbox": [5, 5, 3, 3]},
    ])
    records = read_dataset(path)
    np.testing.assert_allclose(records.images[0].boxes, [[50, 40, 64, 48]])
    assert kinds(records) == {"box_outside_image": 1, "zero_size_box": 1, "unknown_class": 1}
    assert all(p.file == str(path) for p in records.problems)


def test_coco_missing_image_file_and_images_folder_not_found(tmp_path):
    path = write_coco(tmp_path, [])
    (tmp_path / "images" / "train" / "b.jpg").unlink()
    records = read_dataset(path)
    assert len(records) == 1
    assert only(records, "missing_image").file == str(tmp_path / "images" / "train" / "b.jpg")
    (tmp_path / "images" / "train" / "a.jpg").unlink()
    with pytest.raises(DatasetError, match="cannot find the images; looked for a.jpg"):
        read_dataset(path)


# --- YOLO --------------------------------------------------------------------------------------

def make_yolo(root: Path, labels: dict[str, str], images=("a", "b"), names="{0: cat, 1: dog}"):
    for stem in images:
        write_image(root / "images" / "train" / f"{stem}.jpg", 100, 50)
    for stem, text in labels.items():
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    return root / "data.yaml"


def test_yolo_data_yaml_with_dict_names(tmp_path):
    yaml_path = make_yolo(tmp_path, {"a": "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n", "b": ""})
    records = read_dataset(yaml_path, split="train")
    assert records.class_names == ["cat", "dog"]
    np.testing.assert_allclose(records.images[0].boxes, [[40, 15, 60, 35], [0, 0, 20, 10]],
                               atol=1e-4)
    assert records.images[0].labels.tolist() == [1, 0]
    problem = only(records, "empty_label_file")
    assert problem.file == str(tmp_path / "labels" / "train" / "b.txt") and problem.severity == "info"
    assert records.errors == [] and len(records.images[1].boxes) == 0


def test_yolo_names_list_path_relative_to_yaml(tmp_path):
    make_yolo(tmp_path / "ds", {"a": "0 0.5 0.5 0.2 0.2\n"}, images=("a",))
    config = tmp_path / "configs" / "mine.yaml"
    config.parent.mkdir()
    config.write_text("path: ../ds\ntrain: images/train\nnames: [cat, dog]\n")
    records = read_dataset(config, split="train")
    assert records.class_names == ["cat", "dog"] and records.num_boxes == 1


def test_yolo_unknown_class_names_file_and_line(tmp_path):
    make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.1 0.1\n"})
    records = read_dataset(tmp_path, split="train")
    problem = only(records, "unknown_class")
    assert (problem.file, problem.line) == (str(tmp_path / "labels" / "train" / "a.txt"), 2)
    assert records.num_boxes == 2


def test_yolo_missing_image_image_without_label_bad_line(tmp_path):
    make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2\n", "ghost": "0 0.5 0.5 0.2 0.2\n"})
    records = read_dataset(tmp_path, split="train")
    assert kinds(records) == {"bad_label_line": 1, "missing_image": 1, "image_without_label": 1}
    assert only(records, "missing_image").file == str(tmp_path / "labels" / "train" / "ghost.txt")
    assert only(records, "image_without_label").file == str(tmp_path / "images" / "train" / "b.jpg")
    assert only(records, "bad_label_line").line == 1
    assert len(records) == 2


def test_yolo_box_past_border_clipped_with_line(tmp_path):
    make_yolo(tmp_path, {"a": "0 0.95 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0 0.2\n"})
    records = read_dataset(tmp_path, split="train")
    outside = only(records, "box_outside_image")
    assert (outside.file, outside.line) == (str(tmp_path / "labels" / "train" / "a.txt"), 1)
    np.testing.assert_allclose(records.images[0].boxes, [[85, 20, 100, 30]], atol=1e-4)
    assert only(records, "zero_size_box").file == str(tmp_path / "labels" / "train" / "b.txt")


def test_yolo_non_finite_box_is_a_bad_line(tmp_path):
    make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n1 nan 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.1 0.1\n"})
    records = read_dataset(tmp_path, split="train")
    problem = only(records, "bad_label_line")
    assert (problem.file, problem.line) == (str(tmp_path / "labels" / "train" / "a.txt"), 2)
    assert records.num_boxes == 2 and np.isfinite(records.images[0].boxes).all()


def test_yolo_explicit_labels_folder(tmp_path):
    write_image(tmp_path / "visible" / "train" / "x.jpg", 100, 50)
    (tmp_path / "my_labels").mkdir()
    (tmp_path / "my_labels" / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    records = read_dataset(tmp_path / "visible" / "train", images=tmp_path / "visible" / "train",
                           labels=tmp_path / "my_labels", format="yolo")
    assert records.num_boxes == 1 and records.class_names == ["0"]


# --- Pascal VOC --------------------------------------------------------------------------------

def voc_xml(objects, size=(64, 48)) -> str:
    """One <object> per line (line 2, 3, ...) so that problem lines can be asserted."""
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" \
        if size else ""
    body = "".join(
        f"\n<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, difficult in objects)
    return f"<annotation><filename>x.jpg</filename>{size_xml}{body}</annotation>"


def make_voc(root: Path):
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations" / "1.xml").write_text(voc_xml(
        [("cell", (1, 2, 10, 20), 0), ("blob", (3, 3, 9, 9), 1), ("cell", (5, 5, 5, 9), 0)]))
    (root / "Annotations" / "2.xml").write_text(voc_xml([("blob", (0, 0, 30, 30), 0)], size=None))
    for stem in ("1", "2"):
        write_image(root / "JPEGImages" / f"{stem}.jpg", 64, 48)
    (root / "ImageSets" / "Main" / "train.txt").write_text("1\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("2\n")


def test_voc_split_difficult_zero_size(tmp_path):
    make_voc(tmp_path)
    records = read_dataset(tmp_path, split="train")
    assert records.class_names == ["blob", "cell"]  # all xml files name the classes
    assert len(records) == 1
    np.testing.assert_allclose(records.images[0].boxes, [[1, 2, 10, 20]])
    np.testing.assert_allclose(records.images[0].ignore, [[3, 3, 9, 9]])
    problem = only(records, "zero_size_box")
    assert problem.file == str(tmp_path / "Annotations" / "1.xml") and problem.line == 4


def test_voc_xml_without_size_reads_the_image(tmp_path):
    make_voc(tmp_path)
    records = read_dataset(tmp_path, split="val")
    problem = only(records, "missing_size")
    assert problem.file == str(tmp_path / "Annotations" / "2.xml")
    assert (records.images[0].width, records.images[0].height) == (64, 48)
    assert records.errors == []


def test_voc_bare_folder_with_images_dir(tmp_path):
    make_voc(tmp_path)
    records = read_dataset(tmp_path / "Annotations", images=tmp_path / "JPEGImages")
    assert len(records) == 2 and records.num_boxes == 2


def test_unreadable_source_says_what_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="cannot tell the dataset format; looked for .*COCO"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset card .*coco128"):
        read_dataset("no_such_dataset")


# --- ../shared/data ----------------------------------------------------------------------------

SHARED_COUNTS = [  # card, split, images, boxes + problems-dropped boxes, ignore regions
    ("coco128", "train2017", 128, 929, 0),
    ("coco128", "val2017", 128, 898, 0),
    ("coco128_json", "train2017", 128, 929, 10),
    ("bccd", "train", 205, None, 0),
    ("bccd", "val", 87, None, 0),
    ("bccd", "test", 72, None, 0),
    ("llvip_mini", "train", 50, 222, 0),
    ("llvip_mini", "test", 5, 10, 0),
    ("llvip_mini_ir", "train", 50, 222, 0),
]


@pytest.mark.shared_data
@pytest.mark.parametrize("card,split,images,boxes,ignore", SHARED_COUNTS)
def test_shared_dataset_counts(shared_data, card, split, images, boxes, ignore):
    records = read_dataset(card, split=split)
    assert len(records) == images
    if boxes is not None:
        assert records.num_boxes == boxes
    assert sum(len(r.ignore) for r in records.images) == ignore


@pytest.mark.shared_data
def test_shared_coco128_yolo_quirks(shared_data):
    records = read_dataset("coco128", split="train2017")
    assert kinds(records) == {"missing_image": 2, "image_without_label": 2}
    assert {Path(p.file).name for p in records.problems if p.kind == "missing_image"} == {
        "000000000656.txt", "000000000659.txt"}


@pytest.mark.shared_data
def test_shared_bccd_totals_and_zero_size_boxes(shared_data):
    splits = [read_dataset("bccd", split=s) for s in ("train", "val", "test")]
    zero = [p for r in splits for p in r.problems if p.kind == "zero_size_box"]
    assert sum(len(r) for r in splits) == 364
    assert len(zero) == 2 and sum(r.num_boxes for r in splits) + len(zero) == 4888
    assert {Path(p.file).name for p in zero} == {"BloodImage_00338.xml", "BloodImage_00343.xml"}


@pytest.mark.shared_data
def test_shared_llvip_pairs(shared_data):
    records = read_dataset("llvip_mini", split="train")
    assert records.modalities == ["rgb", "lwir"] and records.problems == []
    assert all(r.paths["rgb"].stem == r.paths["lwir"].stem for r in records.images)
    assert {r.paths["lwir"].parent.name for r in records.images} == {"train"}
    assert (records.images[0].width, records.images[0].height) == (1280, 1024)


@pytest.mark.shared_data
@pytest.mark.parametrize("split,images,annotations", [("train", 800, 6945), ("val", 290, 2460)])
def test_shared_hit_uav_dontcare_is_ignore(shared_data, split, images, annotations):
    records = read_dataset("hit_uav_mini", split=split)
    assert len(records) == images and records.modalities == ["lwir"]
    assert records.class_names == ["Person", "Car", "Bicycle", "OtherVehicle"]
    assert records.category_ids == [0, 1, 2, 3]
    ignore = sum(len(r.ignore) for r in records.images)
    assert ignore > 0 and records.num_boxes + ignore == annotations


@pytest.mark.shared_data
def test_shared_paths_without_cards(shared_data):
    assert read_dataset(shared_data / "coco128" / "data.yaml", split="val2017").num_boxes == 898
    from_json = read_dataset(shared_data / "coco128" / "annotations" / "instances_train2017.json")
    assert (len(from_json), from_json.num_boxes) == (128, 929)
    assert from_json.category_ids[:3] == [1, 2, 3] and from_json.category_ids[-1] == 90
    assert len(read_dataset(shared_data / "bccd" / "BCCD", split="val")) == 87
    llvip = read_dataset(shared_data / "llvip_mini", split="test", modalities={
        "rgb": None, "lwir": shared_data / "llvip_mini" / "infrared" / "test"})
    assert len(llvip) == 5 and llvip.num_boxes == 10 and llvip.modalities == ["rgb", "lwir"]
