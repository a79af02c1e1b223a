"""Issue 16, one test per kind: nothing the user had is lost, nothing fails silently, every error
is one line naming its file, key or flag (exit non-zero, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.cli import main
from hostile import digest, one_line_error
from test_train_cli import TINY, make_yolo_dataset


@pytest.mark.parametrize("link", [True, False])
def test_convert_into_its_own_input_is_refused(tmp_path, capsys, link):
    data = make_yolo_dataset(tmp_path / "ds").parent
    before = digest(data)
    args = ["data", "convert", str(data), "--split", "train", "--to", "coco", "--out", str(data)]
    assert main(args + (["--link"] if link else [])) == 2
    one_line_error(capsys, "--out")
    assert digest(data) == before


def test_run_folder_never_replaces_the_users_files(tmp_path, capsys, monkeypatch):
    data = make_yolo_dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_text(TINY.read_text())
    Path("metrics.csv").write_text("mine\n")
    before = digest(tmp_path)
    common = [f"data.train.source={data}", f"data.val.source={data}", "train.epochs=1"]
    assert main(["train", "config.yaml", *common, "train.out_dir=."]) == 2
    one_line_error(capsys, "train.out_dir")
    assert main(["train", "config.yaml", *common, "train.out_dir=.", "--overwrite"]) == 2
    one_line_error(capsys, "config.yaml")
    assert main(["train", "config.yaml", *common, f"train.out_dir={data.parent}"]) == 2
    one_line_error(capsys, "train.out_dir")
    assert digest(tmp_path) == before


def test_convert_model_over_itself_is_refused(tmp_path, capsys):
    from detector.checkpoint import describe_detector, save_checkpoint
    from detector.models.registry import build_detector

    detector = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", ["a"], weights=None)
    model = tmp_path / "my.pt"
    save_checkpoint(model, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    before = digest(tmp_path)
    assert main(["convert", "--model", str(model), "--to", "ir", "--out", str(model)]) == 2
    one_line_error(capsys, "--out")
    assert digest(tmp_path) == before
    # a run checkpoint whose entries or tensors do not fit its arch: one line naming the file
    Image.new("RGB", (32, 32)).save(tmp_path / "img" / "x.png") if (tmp_path / "img").mkdir() is None else None
    for name, change in (("names.pt", {"class_names": "ab"}), ("classes.pt", {"class_names": ["a", "b"]})):
        save_checkpoint(tmp_path / name, {**describe_detector(detector),
                                          "model": detector.state_dict(), "epoch": 0, **change})
        assert main(["predict", "--model", str(tmp_path / name), "--source", str(tmp_path / "img"),
                     "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
        one_line_error(capsys, tmp_path / name)


def test_mid_epoch_failures_fail_before_the_run_folder(tmp_path, capsys):
    data = make_yolo_dataset(tmp_path / "ds")
    bad = tmp_path / "ds" / "images" / "train" / "train1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # header readable, pixels not
    run = tmp_path / "run"
    common = [f"data.train.source={data}", f"data.val.source={data}", f"train.out_dir={run}"]
    assert main(["train", str(TINY), *common, "train.epochs=1"]) == 2
    one_line_error(capsys, bad)
    assert not run.exists()
    for override, key in (("train.lr=.nan", "train.lr"), ("train.warmup_epochs=-3", "train.warmup_epochs"),
                          ("train.workers=-1", "train.workers"), ("train.momentum=-1", "train.momentum")):
        assert main(["train", str(TINY), *common, override]) == 2
        one_line_error(capsys, key)
        assert not run.exists()


def test_every_numeric_train_key_has_bounds():
    import dataclasses
    import typing

    from detector.config import TrainConfig
    from detector.config_bounds import bound_of

    for f in dataclasses.fields(TrainConfig):
        hint = typing.get_type_hints(TrainConfig)[f.name]
        key = f"train.{f.name}.x" if typing.get_origin(hint) is dict else f"train.{f.name}"
        if hint in (int, float) or set(typing.get_args(hint)) & {int, float}:
            assert bound_of(key) is not None, f.name


def test_bad_label_files_name_the_file_and_line(tmp_path, capsys):
    data = make_yolo_dataset(tmp_path / "ds")
    label = tmp_path / "ds" / "labels" / "train" / "train0.txt"
    label.write_bytes(b"0 0.5 0.5 0.2 0.2\n\xff\xfe 1 0.5\n")
    assert main(["data", "check", str(data), "--split", "train"]) == 1
    assert f"{label}:2: bad_label_line" in capsys.readouterr().out
    coco = tmp_path / "c.json"
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                 "bbox": ["x", "y", "w", "h"]}],
                                "categories": [{"id": None, "name": "a"}]}))
    assert main(["data", "check", str(coco)]) == 2
    one_line_error(capsys, coco, "categories[0]")


def test_device_and_worker_flags(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    assert main(["predict", "--model", "x.pt", "--source", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error:")
    assert main(["eval", "--model", "x.pt", "--data", str(tmp_path), "--workers", "-1",
                 "--device", "cpu"]) == 2
    one_line_error(capsys, "--workers")


def test_silent_cases_warn(tmp_path, capsys):
    from detector.data.readers import read_dataset

    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}],
                                "annotations": [], "categories": [{"id": 1, "name": "a"},
                                                                  {"id": 2, "name": "a"}]}))
    kinds = {p.kind for p in read_dataset(coco).problems if p.severity == "warning"}
    assert kinds == {"no_annotations", "duplicate_class_name"}


def test_exif_orientation_is_applied(tmp_path):
    from PIL import ImageOps

    from detector.data.images import image_size, load_image

    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[:10, :20] = (250, 10, 10)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    for orientation in range(1, 9):
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        image.save(path, exif=exif)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        loaded = load_image(path, 3)
        assert loaded.shape == expected.shape and (loaded == expected).all(), orientation
        assert image_size(path) == (expected.shape[1], expected.shape[0])


def test_float_tiff_fails_data_check_as_training_would(tmp_path, capsys):
    import cv2

    data = make_yolo_dataset(tmp_path / "ds")
    png = tmp_path / "ds" / "images" / "train" / "train0.png"
    png.unlink()
    cv2.imwrite(str(png.with_suffix(".tiff")), np.random.rand(96, 96).astype(np.float32))
    assert main(["data", "check", str(data), "--split", "train"]) == 1
    assert "corrupt_image" in capsys.readouterr().out


def test_synthetic_command_makes_the_shipped_config_data(tmp_path, monkeypatch, capsys):
    from detector.recipe import build_data
    from detector.config import load_config

    monkeypatch.chdir(tmp_path)
    assert main(["data", "synthetic", "data/synthetic", "--train", "4", "--val", "2"]) == 0
    train_data, val_data, names, _ = build_data(load_config(TINY))
    assert len(train_data) == 4 and len(val_data) == 2 and names == ["circle", "square", "triangle"]


def test_voc_class_names_differing_only_in_case_warn(tmp_path):
    from detector.data.readers import read_dataset

    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    for stem, name in (("a", "RBC"), ("b", "rbc")):
        Image.new("RGB", (20, 20)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><size><width>20</width><height>20</height></size><object><name>{name}"
            "</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
            "</object></annotation>")
    problems = read_dataset(tmp_path).problems
    assert [p.kind for p in problems if p.severity == "warning"] == ["case_only_class_names"]
