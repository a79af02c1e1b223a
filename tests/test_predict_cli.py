"""`detector predict`: annotated images and predictions.json from a checkpoint."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detector.checkpoint import describe_detector, save_checkpoint
from detector.cli import main
from detector.commands.predict import draw_detections
from detector.models.detector import Detector
from detector.models import registry

ARCH = "test_predict_two_boxes"


class TwoBoxDetector(Detector):
    """Two fixed detections per image: class 1 at the top-left quarter (score 0.9) and class 0
    at the bottom-right quarter (score 0.1). Records the images it was given."""

    arch = ARCH
    seen: list = []

    def __init__(self, class_names, in_channels=3):
        super().__init__()
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.modalities = ["rgb"] if in_channels == 3 else ["lwir"]
        self.gain = torch.nn.Parameter(torch.ones(()))

    def build_args(self):
        return {}

    def forward(self, images, targets=None):
        outputs = []
        for image in images:
            TwoBoxDetector.seen.append(tuple(image.shape))
            height, width = image.shape[-2:]
            boxes = torch.tensor([[0, 0, width / 2, height / 2],
                                  [width / 2, height / 2, width - 1, height - 1]])
            outputs.append({"boxes": boxes * self.gain, "scores": torch.tensor([0.9, 0.1]),
                            "labels": torch.tensor([1, 0])})
        return outputs


def build_two_boxes(class_names, weights=None, backbone_weights=None, in_channels=3,
                    class_map=None, **kwargs):
    return TwoBoxDetector(class_names, in_channels=in_channels)


@pytest.fixture(autouse=True)
def registered_model(monkeypatch):
    """The test arch is in the model registry for the test only, so that tests which go over
    every registered model never meet it."""
    entry = registry.ModelEntry(ARCH, "test", build_two_boxes)
    monkeypatch.setitem(registry._MODELS, ARCH, entry)


def checkpoint(tmp_path, in_channels=3):
    detector = TwoBoxDetector(["cat", "dog"], in_channels=in_channels)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(),
                           "epoch": 0})
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 255, np.uint8))
    cv2.imwrite(str(folder / "sub" / "b.jpg"), np.full((50, 30, 3), 255, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_folder_writes_annotated_images_and_json(tmp_path, image_folder, capsys):
    TwoBoxDetector.seen.clear()
    out = tmp_path / "out"
    code = main(["predict", "--model", str(checkpoint(tmp_path)), "--source", str(image_folder),
                 "--out", str(out), "--conf", "0.25", "--device", "cpu"])
    assert code == 0
    images = json.loads((out / "images.json").read_text())
    assert images["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in images["images"]] == [
        (1, "a.png", 60, 40), (2, "sub/b.jpg", 30, 50)]
    results = json.loads((out / "predictions.json").read_text())
    # COCO results; the 0.1 detection is below --conf; the other is kept, class "dog" = id 2
    assert results[0] == {"image_id": 1, "category_id": 2, "bbox": [0.0, 0.0, 30.0, 20.0],
                          "score": pytest.approx(0.9)}
    assert [r["image_id"] for r in results] == [1, 2]
    assert sorted(TwoBoxDetector.seen) == [(3, 40, 60), (3, 50, 30)]
    annotated = cv2.imread(str(out / "a.png"))
    assert annotated.shape == (40, 60, 3)
    # the white image now has coloured box pixels in the top-left quarter only
    coloured = annotated.min(axis=2) < 200
    assert coloured[:21, :31].sum() > 20 and coloured[25:, 35:].sum() == 0
    assert (out / "sub" / "b.jpg").is_file()
    assert "2 detections in 2 images" in capsys.readouterr().out


def test_predict_single_image_low_conf_keeps_both(tmp_path, image_folder):
    out = tmp_path / "out"
    code = main(["predict", "--model", str(checkpoint(tmp_path)), "--source",
                 str(image_folder / "a.png"), "--out", str(out), "--conf", "0.05"])
    assert code == 0
    results = json.loads((out / "predictions.json").read_text())
    assert [r["category_id"] for r in results] == [2, 1]  # dog (0.9), then cat (0.1)


def test_predict_thermal_model_reads_one_channel(tmp_path, image_folder):
    TwoBoxDetector.seen.clear()
    code = main(["predict", "--model", str(checkpoint(tmp_path, in_channels=1)), "--source",
                 str(image_folder / "a.png"), "--out", str(tmp_path / "out")])
    assert code == 0
    assert TwoBoxDetector.seen == [(1, 40, 60)]
    assert cv2.imread(str(tmp_path / "out" / "a.png")).shape == (40, 60, 3)


def test_predict_bad_inputs_are_one_line_errors(tmp_path, image_folder, capsys):
    model = str(checkpoint(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", model, "--source", str(empty), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["predict", "--model", model, "--source", str(image_folder), "--out",
                 str(tmp_path / "o"), "--conf", "2"]) == 2
    assert "--conf" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["predict", "--model", model, "--source", str(broken), "--out",
                 str(tmp_path / "o")]) == 2
    # the progress bar shares stderr; the error is one line after it, with no traceback
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "x.jpg: corrupt image" in errors[0] and "Traceback" not in err


def test_draw_detections_labels_inside_a_box_at_the_top_edge():
    image = np.full((30, 40, 3), 255, np.uint8)
    draw_detections(image, [{"box": [5, 0, 35, 25], "score": 0.5, "label": 0, "class": "x"}])
    assert (image.min(axis=2) < 200)[0:8, 5:20].sum() > 20  # label drawn below the top edge
