"""`detector data check`: decode checks, problem lines, --json, exit codes; ../shared/data counts."""

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from detector.cli import main
from detector.data.check import check_dataset
from detector.data.readers import read_dataset


def write_image(path: Path, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # noise so that the JPEG has enough entropy-coded data to cut in half
    pixels = Image.effect_noise((width, height), 60).convert("RGB")
    pixels.save(path, quality=95)
    return path


def make_yolo(root: Path, stems=("a", "b"), label="0 0.5 0.5 0.2 0.2\n") -> Path:
    for stem in stems:
        write_image(root / "images" / "train" / f"{stem}.jpg")
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{stem}.txt").write_text(label)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [thing]\n")
    return root


def run_check(capsys, *args):
    code = main(["data", "check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_clean_dataset_exits_0_with_summary(tmp_path, capsys):
    make_yolo(tmp_path)
    code, out, _ = run_check(capsys, tmp_path, "--split", "train")
    assert code == 0
    assert "thing      2" in out.splitlines() and "0 problem(s), 0 note(s)" in out
    assert "64x48" in out


def test_truncated_jpeg_is_corrupt_image(tmp_path, capsys):
    make_yolo(tmp_path)
    path = tmp_path / "images" / "train" / "b.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, out, _ = run_check(capsys, tmp_path, "--split", "train", "--json", tmp_path / "r.json")
    assert code == 1
    assert f"{path}: corrupt_image: cannot decode" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(p["file"], p["kind"]) for p in report["problems"]] == [(str(path), "corrupt_image")]
    assert report["images"] == 2 and report["boxes"] == 2 and report["per_class"] == {"thing": 2}


def test_problem_lines_carry_file_and_line(tmp_path, capsys):
    make_yolo(tmp_path, label="0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n")
    code, out, _ = run_check(capsys, tmp_path, "--split", "train", "--no-decode")
    label = tmp_path / "labels" / "train" / "a.txt"
    assert code == 1
    assert f"{label}:2: unknown_class: class 3 is out of range" in out


def test_info_problems_only_exit_0(tmp_path, capsys):
    make_yolo(tmp_path)
    (tmp_path / "labels" / "train" / "b.txt").write_text("")
    code, out, _ = run_check(capsys, tmp_path, "--split", "train")
    assert code == 0
    assert f"{tmp_path / 'labels' / 'train' / 'b.txt'}: empty_label_file:" in out
    assert "0 problem(s), 1 note(s)" in out


def test_modality_size_mismatch(tmp_path):
    make_yolo(tmp_path)
    write_image(tmp_path / "ir" / "a.jpg", 64, 48)
    write_image(tmp_path / "ir" / "b.jpg", 32, 24)
    records = read_dataset(tmp_path, split="train", modalities={"rgb": None, "lwir": tmp_path / "ir"})
    report = check_dataset(records, progress=False)
    assert [(p.kind, p.file) for p in report.problems] == [
        ("modality_size_mismatch", str(tmp_path / "ir" / "b.jpg"))]


def test_duplicate_image_ids(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    write_image(tmp_path / "images" / "b.jpg")
    json_path = tmp_path / "ann.json"
    json_path.write_text(json.dumps({"images": [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 1, "file_name": "b.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    report = check_dataset(read_dataset(json_path, images=tmp_path / "images"), progress=False)
    assert Counter((p.kind, p.file) for p in report.problems if p.severity != "warning") == {
        ("duplicate_id", str(json_path)): 1,  # id 1 twice in the json
        ("duplicate_id", str(tmp_path / "images" / "a.jpg")): 1}  # a.jpg under two ids


def test_unusable_input_exits_2_in_one_line(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{not json")
    code, out, err = run_check(capsys, tmp_path / "broken.json")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "broken.json:1: not valid JSON" in err
    assert "Traceback" not in err


def test_summary_statistics(tmp_path):
    make_yolo(tmp_path, label="0 0.5 0.5 0.5 0.5\n")
    summary = check_dataset(read_dataset(tmp_path, split="train"), progress=False).summary
    assert summary["box_width"] == {"min": 32.0, "median": 32.0, "max": 32.0}
    assert summary["box_area"] == {"small": 2, "medium": 0, "large": 0}
    assert summary["image_sizes"] == {"64x48": 2} and summary["negatives"] == 0


# --- ../shared/data through the CLI (each split decoded once) -----------------------------------

SHARED = [  # card, split, images, boxes, ignore, exit code
    ("coco128", "val2017", 128, 898, 0, 0),
    ("coco128", "train2017", 128, 929, 0, 1),  # two label files without their image
    ("coco128_json", "train2017", 128, 929, 10, 0),
    ("bccd", "train", 205, 2804, 0, 1),
    ("bccd", "val", 87, 1137, 0, 1),
    ("bccd", "test", 72, 945, 0, 0),
    ("llvip_mini", "train", 50, 222, 0, 0),
    ("llvip_mini", "test", 5, 10, 0, 0),
    ("hit_uav_mini", "train", 800, 6901, 44, 0),
    ("hit_uav_mini", "val", 290, 2453, 7, 0),
]


@pytest.fixture(scope="module")
def shared_reports(tmp_path_factory, shared_data):
    reports = {}
    folder = tmp_path_factory.mktemp("reports")
    for card, split, *_ in SHARED:
        path = folder / f"{card}_{split}.json"
        code = main(["data", "check", card, "--split", split, "--json", str(path)])
        reports[card, split] = code, json.loads(path.read_text())
    return reports


@pytest.mark.shared_data
@pytest.mark.parametrize("card,split,images,boxes,ignore,exit_code", SHARED)
def test_shared_check_counts(shared_reports, card, split, images, boxes, ignore, exit_code):
    code, report = shared_reports[card, split]
    assert (report["images"], report["boxes"], report["ignore"], code) == (
        images, boxes, ignore, exit_code)
    assert not [p for p in report["problems"] if p["kind"] == "corrupt_image"]


@pytest.mark.shared_data
def test_shared_bccd_reports_its_two_zero_size_boxes(shared_reports):
    zero = [p for split in ("train", "val", "test")
            for p in shared_reports["bccd", split][1]["problems"] if p["kind"] == "zero_size_box"]
    assert sorted(Path(p["file"]).name for p in zero) == ["BloodImage_00338.xml",
                                                          "BloodImage_00343.xml"]
    total = sum(shared_reports["bccd", s][1]["boxes"] for s in ("train", "val", "test"))
    assert total + len(zero) == 4888


@pytest.mark.shared_data
def test_shared_hit_uav_annotations_are_boxes_plus_ignore(shared_reports):
    for split, annotations in (("train", 6945), ("val", 2460)):
        report = shared_reports["hit_uav_mini", split][1]
        assert report["boxes"] + report["ignore"] == annotations
        assert set(report["per_class"]) == {"Person", "Car", "Bicycle", "OtherVehicle"}
        assert report["modalities"] == ["lwir"]


@pytest.mark.shared_data
def test_shared_llvip_is_paired(shared_reports):
    assert shared_reports["llvip_mini", "train"][1]["modalities"] == ["rgb", "lwir"]
