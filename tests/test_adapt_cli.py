"""`detector train recipe.yaml` with train.adapt: end to end on CPU for every family (a tiny
generated source / target pair, a few steps), and one clear line for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from detector.checkpoint import load_checkpoint
from detector.cli import main
from test_train_cli import make_yolo_dataset

FAMILIES = {  # one small arch per family, from scratch, tiny images
    "rcnn": ({"arch": "fasterrcnn_mobilenet_v3_large_320_fpn", "weights": None,
              "options": {"min_size": 64, "max_size": 64, "box_batch_size_per_image": 32,
                          "rpn_post_nms_top_n_train": 100, "rpn_post_nms_top_n_test": 100}},
             ["adversarial"]),
    "yolo": ({"arch": "yolov8n", "weights": None, "image_size": 64,
              "options": {"image_size": 64}}, ["mmd", {"name": "adversarial", "ramp_epochs": 1}]),
    "yolov5": ({"arch": "yolov5n", "weights": None, "image_size": 64,
                "options": {"image_size": 64}},
               [{"name": "teacher", "options": {"threshold": 0.01}}, "adversarial"]),
}


def make_target_folder(folder: Path, count: int = 3, size: int = 96) -> Path:
    """Another domain: dark, low-contrast frames with a bright blob (no labels)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for index in range(count):
        image = rng.integers(10, 50, (size, size, 3), dtype=np.uint8)
        x, y = rng.integers(0, size - 30, 2)
        image[y:y + 24, x:x + 24] = 200
        Image.fromarray(image).save(folder / f"night{index}.jpg")
    return folder


def write_recipe(tmp_path: Path, model: dict, methods: list, **train) -> Path:
    data = tmp_path / "data" / "data.yaml"
    if not data.exists():
        make_yolo_dataset(tmp_path / "data", size=64)
        make_target_folder(tmp_path / "night")
    recipe = {
        "model": model,
        "data": {"train": {"source": str(data), "split": "train"},
                 "val": {"source": str(data), "split": "val"},
                 "augment": [{"name": "HorizontalFlip", "p": 0.5}]},
        "train": {"epochs": 1, "batch_size": 2, "lr": 0.002, "warmup_epochs": 0.5, "amp": False,
                  "workers": 0, "device": "cpu", "out_dir": str(tmp_path / "run"),
                  "adapt": {"target": str(tmp_path / "night"), "methods": methods}, **train},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_train_with_adaptation_end_to_end(tmp_path, capsys, family):
    model, methods = FAMILIES[family]
    recipe = write_recipe(tmp_path, model, methods, ema=family == "yolov5")
    assert main(["train", str(recipe)]) == 0
    assert "best mAP50-95" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    row = state["history"][0]
    names = [m if isinstance(m, str) else m["name"] for m in methods]
    assert all(np.isfinite(row[f"adapt_{name}"]) for name in names)
    assert row["adapt_adversarial"] > 0 and state["adapt"]["step"] == 2  # 4 images, batch 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["adapt"][
        "target"]["source"] == str(tmp_path / "night")
    if family == "yolov5":  # resume carries the adaptation state on
        assert main(["train", "--resume", str(tmp_path / "run"), "train.epochs=2"]) == 0
        resumed = load_checkpoint(tmp_path / "run" / "last.pt")
        assert resumed["adapt"]["step"] == 4 and int(resumed["adapt"]["methods"]["0.updates"]) == 4


def one_line_error(capsys, args) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


YOLOV5 = FAMILIES["yolov5"][0]


def test_empty_target_folder(tmp_path, capsys):
    recipe = write_recipe(tmp_path, YOLOV5, ["mmd"])
    (tmp_path / "empty").mkdir()
    err = one_line_error(capsys, ["train", str(recipe), f"train.adapt.target={tmp_path / 'empty'}"])
    assert f"train.adapt.target: {tmp_path / 'empty'} holds no images" in err


def test_target_with_another_channel_count(tmp_path, capsys):
    recipe = write_recipe(tmp_path, YOLOV5, ["mmd"])
    target = f"train.adapt.target={{source: {tmp_path / 'night'}, modalities: [lwir]}}"
    err = one_line_error(capsys, ["train", str(recipe), target])
    assert "train.adapt.target: its images have 1 channels but the model takes 3 (rgb)" in err


def test_unknown_method(tmp_path, capsys):
    recipe = write_recipe(tmp_path, YOLOV5, ["mmd", "coral"])
    err = one_line_error(capsys, ["train", str(recipe)])
    assert f"{recipe}:" in err and "train.adapt.methods.1.name: unknown adaptation method 'coral'" in err
    assert "valid methods: adversarial, mmd, teacher" in err


def test_preset_that_freezes_every_part_the_method_reaches(tmp_path, capsys):
    recipe = write_recipe(tmp_path, YOLOV5, ["adversarial"], preset="feature_extraction")
    err = one_line_error(capsys, ["train", str(recipe)])
    assert "train.adapt.methods.0 (adversarial): its loss reaches stem, backbone.0" in err
    assert "but the run trains only head" in err
