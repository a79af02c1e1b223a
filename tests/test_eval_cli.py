"""`detector eval`: a results file with no model, and a model checkpoint, on a small COCO set."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detector.checkpoint import describe_detector, save_checkpoint
from detector.cli import main
from detector.evaluation import STAT_NAMES
import toy_detector
from detector.models import registry

ARCH = "test_eval_centre_box"
WIDTH, HEIGHT = 64, 48
CENTRE = [16.0, 12.0, 32.0, 24.0]  # middle half of a 64 x 48 image, as COCO [x, y, w, h]


class CentreBoxDetector(toy_detector.CentreBoxDetector):
    arch = ARCH  # registered under this name for the tests here


def build_centre_box(class_names, weights=None, backbone_weights=None, in_channels=3,
                     class_map=None, **kwargs):
    return CentreBoxDetector(class_names)


@pytest.fixture(autouse=True)
def registered_model(monkeypatch):
    """The test arch is in the model registry for the test only, so that tests which go over
    every registered model never meet it."""
    entry = registry.ModelEntry(ARCH, "test", build_centre_box)
    monkeypatch.setitem(registry._MODELS, ARCH, entry)


@pytest.fixture
def coco_set(tmp_path):
    """3 images; categories 0 "cat" and 3 "dog"; cats in the middle of images 1 and 2, a dog
    in image 3 and a crowd region in image 1."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    images, annotations = [], []
    for image_id in (1, 2, 3):
        name = f"im{image_id}.png"
        cv2.imwrite(str(images_dir / name), np.full((HEIGHT, WIDTH, 3), 40 * image_id, np.uint8))
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
    annotations += [
        {"id": 1, "image_id": 1, "category_id": 0, "bbox": CENTRE, "area": 768, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 0, "bbox": CENTRE, "area": 768, "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 3, "bbox": [2, 2, 20, 20], "area": 400,
         "iscrowd": 0},
        {"id": 4, "image_id": 1, "category_id": 0, "bbox": [40, 30, 20, 15], "area": 300,
         "iscrowd": 1},
    ]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 0, "name": "cat"}, {"id": 3, "name": "dog"}]}))
    return gt


def write(tmp_path, results, name="dt.json"):
    path = tmp_path / name
    path.write_text(json.dumps(results))
    return path


def result(image_id, category_id, bbox, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_eval_predictions_end_to_end(tmp_path, coco_set, capsys, backend):
    dt = write(tmp_path, [
        result(1, 0, CENTRE, 0.9),
        result(2, 0, CENTRE, 0.8),
        result(1, 0, [41, 31, 18, 13], 0.95),  # inside the crowd region: not a false positive
        result(3, 3, [30, 20, 20, 20], 0.7),  # the dog, missed
    ])
    out = tmp_path / "report" / "metrics.json"
    code = main(["eval", "--data", str(coco_set), "--predictions", str(dt), "--backend", backend,
                 "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert list(report["stats"]) == list(STAT_NAMES)
    assert report["per_class"] == {"cat": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)},
                                   "dog": {"AP": 0.0, "AP50": 0.0}}
    assert report["stats"]["AP"] == pytest.approx(0.5)
    assert report["instances"] == {"cat": 2, "dog": 1}
    assert report["images_per_s"] is None and report["num_predictions"] == 4
    printed = capsys.readouterr().out
    assert "cat" in printed and "AP50-95" in printed and "AR100" in printed


def test_eval_predictions_writes_plots(tmp_path, coco_set):
    dt = write(tmp_path, [result(1, 0, CENTRE, 0.9)])
    assert main(["eval", "--data", str(coco_set), "--predictions", str(dt),
                 "--plots", str(tmp_path / "plots")]) == 0
    for name in ("pr_curves.png", "class_ap.png"):
        image = cv2.imread(str(tmp_path / "plots" / name))
        assert image is not None and image.shape[0] > 100


@pytest.mark.parametrize("results, expected", [
    ([result(7, 0, CENTRE, 0.9)], "result 0: image_id 7 is not an image"),
    ([result(1, 0, CENTRE, 0.9), result(1, 5, CENTRE, 0.9)],
     "result 1: category_id 5 is not a category"),
    (None, "not valid JSON"),
])
def test_bad_predictions_file_exits_2_with_one_line(tmp_path, coco_set, capsys, results, expected):
    if results is None:
        dt = tmp_path / "dt.json"
        dt.write_text("[{\"image_id\": 1,")
    else:
        dt = write(tmp_path, results)
    code = main(["eval", "--data", str(coco_set), "--predictions", str(dt)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(dt) in err and expected in err


def test_bad_predictions_file_shows_no_traceback(tmp_path, coco_set):
    dt = write(tmp_path, [result(99, 0, CENTRE, 0.9)])
    done = subprocess.run([sys.executable, "-m", "detector.cli", "eval", "--data", str(coco_set),
                           "--predictions", str(dt)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
    assert "image_id 99" in done.stderr


def checkpoint(tmp_path, class_names=("cat", "dog")):
    detector = CentreBoxDetector(class_names)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(),
                           "epoch": 0})
    return path


def test_eval_model_checkpoint(tmp_path, coco_set, capsys):
    out = tmp_path / "metrics.json"
    results = tmp_path / "results.json"
    code = main(["eval", "--model", str(checkpoint(tmp_path)), "--data", str(coco_set),
                 "--batch-size", "2", "--device", "cpu", "--json", str(out),
                 "--results", str(results)])
    assert code == 0
    report = json.loads(out.read_text())
    # the centre box finds both cats; image 3 gets a "cat" where there is none, the dog is missed
    assert report["per_class"]["cat"]["AP"] == pytest.approx(1.0)
    assert report["per_class"]["dog"]["AP"] == 0.0
    assert report["images_per_s"] > 0 and report["num_images"] == 3
    written = json.loads(results.read_text())
    assert [(r["image_id"], r["category_id"]) for r in written] == [(1, 0), (2, 0), (3, 0)]
    assert written[0]["bbox"] == pytest.approx(CENTRE)
    assert "images/s" in capsys.readouterr().out


def test_eval_model_with_other_classes_asks_for_class_map(tmp_path, coco_set, capsys):
    path = checkpoint(tmp_path, class_names=("person", "car"))
    code = main(["eval", "--model", str(path), "--data", str(coco_set), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--class-map auto" in err and "['person', 'car']" in err


def test_eval_help_fits_the_terminal_width(monkeypatch):
    """The help formatter is given the width (so argparse need not import shutil to find it),
    and still wraps at COLUMNS - 2 as argparse does."""
    from detector.cli import build_parser

    def widest(columns: int) -> int:
        monkeypatch.setenv("COLUMNS", str(columns))
        return max(len(line) for line in build_parser("eval").format_help().splitlines())

    assert widest(50) <= 48 < widest(120) <= 118
