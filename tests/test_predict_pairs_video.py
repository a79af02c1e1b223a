"""`detector predict` on RGB+LWIR pairs, 16-bit thermal images, videos, and exported .onnx
models; and its one-line errors (unpaired file, 3-channel input to a 4-channel model, a video
that cannot be opened)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detector.checkpoint import describe_detector, save_checkpoint
from detector.cli import main
from test_predict_cli import TwoBoxDetector, registered_model  # noqa: F401 (autouse fixture)


def two_box_checkpoint(tmp_path, in_channels: int, modalities: list[str]):
    detector = TwoBoxDetector(["cat", "dog"], in_channels=in_channels)
    detector.modalities = modalities
    path = tmp_path / f"model{in_channels}.pt"
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    return str(path)


@pytest.fixture
def recorded(monkeypatch):
    """The images TwoBoxDetector receives, as tensors."""
    images = []
    original = TwoBoxDetector.forward

    def forward(self, batch, targets=None):
        images.extend(image.clone() for image in batch)
        return original(self, batch, targets)

    monkeypatch.setattr(TwoBoxDetector, "forward", forward)
    return images


def one_error(argv, capsys, expected: str) -> str:
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and expected in lines[0], lines
    return lines[0]


def write_pairs(tmp_path, stems=("a", "b"), lwir_stems=("a", "b")):
    rgb, lwir = tmp_path / "visible", tmp_path / "infrared"
    rgb.mkdir()
    lwir.mkdir()
    for stem in stems:
        cv2.imwrite(str(rgb / f"{stem}.jpg"), np.full((40, 60, 3), 200, np.uint8))
    for stem in lwir_stems:  # 16-bit thermal, as radiometric cameras store it
        cv2.imwrite(str(lwir / f"{stem}.png"), np.full((40, 60), 30000, np.uint16))
    return rgb, lwir


def test_pairs_stack_rgb_and_16_bit_thermal_by_stem(tmp_path, recorded):
    rgb, lwir = write_pairs(tmp_path)
    model = two_box_checkpoint(tmp_path, 4, ["rgb", "lwir"])
    out = tmp_path / "out"
    assert main(["predict", "--model", model, "--modalities", f"rgb={rgb}", f"lwir={lwir}",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert [tuple(image.shape) for image in recorded] == [(4, 40, 60), (4, 40, 60)]
    torch.testing.assert_close(recorded[0][0], torch.full((40, 60), 200 / 255))  # red
    torch.testing.assert_close(recorded[0][3], torch.full((40, 60), 30000 / 65535))  # thermal
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(i["file_name"], i["lwir_file"]) for i in images] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]
    assert cv2.imread(str(out / "a.jpg")).shape == (40, 60, 3)  # the rgb image, its own size
    assert len(json.loads((out / "predictions.json").read_text())) == 2


def test_unpaired_file_and_three_channels_for_a_four_channel_model(tmp_path, capsys):
    rgb, lwir = write_pairs(tmp_path, lwir_stems=("a",))
    model = two_box_checkpoint(tmp_path, 4, ["rgb", "lwir"])
    line = one_error(["predict", "--model", model, "--modalities", f"rgb={rgb}", f"lwir={lwir}",
                      "--out", str(tmp_path / "o")], capsys, "unpaired files")
    assert str(lwir) in line and ": b" in line
    one_error(["predict", "--model", model, "--source", str(rgb), "--out", str(tmp_path / "o")],
              capsys, "reads rgb + lwir images together (4 channels); give one folder per "
                      "modality: --modalities rgb=DIR lwir=DIR")
    one_error(["predict", "--model", model, "--modalities", f"lwir={lwir}", f"rgb={rgb}",
               "--out", str(tmp_path / "o")], capsys, "reads rgb + lwir images (in that order)")


def test_16_bit_thermal_image_reaches_the_model_at_full_scale(tmp_path, recorded):
    folder = tmp_path / "thermal"
    folder.mkdir()
    ramp = np.linspace(1000, 50000, 40 * 60).reshape(40, 60).astype(np.uint16)
    cv2.imwrite(str(folder / "t.png"), ramp)
    out = tmp_path / "out"
    assert main(["predict", "--model", two_box_checkpoint(tmp_path, 1, ["lwir"]), "--source",
                 str(folder), "--out", str(out)]) == 0
    torch.testing.assert_close(recorded[0][0], torch.from_numpy(ramp / 65535.0).float())
    annotated = cv2.imread(str(out / "t.png"))
    assert annotated.shape == (40, 60, 3) and annotated.dtype == np.uint8
    assert annotated[-1, 0].max() > 200  # stretched to the image's own range, not left dark


def test_video_gives_an_annotated_copy_and_json_lines(tmp_path, capsys):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for index in range(6):
        writer.write(np.full((48, 64, 3), 255 - 10 * index, np.uint8))
    writer.release()
    out = tmp_path / "out"
    assert main(["predict", "--model", two_box_checkpoint(tmp_path, 3, ["rgb"]), "--source",
                 str(clip), "--out", str(out), "--batch-size", "4"]) == 0
    assert "6 detections in 6 frames" in capsys.readouterr().out  # the 0.1 ones are below --conf
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    assert lines[1]["time_s"] == pytest.approx(0.2)
    assert lines[0]["detections"] == [{"bbox": [0.0, 0.0, 32.0, 24.0], "score": pytest.approx(0.9),
                                       "category_id": 2, "class": "dog"}]
    copy = cv2.VideoCapture(str(out / "clip.avi"))
    assert copy.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    ok, frame = copy.read()
    assert ok and frame.shape == (48, 64, 3) and (frame.min(axis=2) < 150)[:24, :32].sum() > 20


def test_video_that_cannot_be_opened_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    assert main(["predict", "--model", two_box_checkpoint(tmp_path, 3, ["rgb"]), "--source",
                 str(broken), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err  # FFmpeg's own diagnosis is silenced: one line in all
    assert err.startswith(f"error: {broken}: OpenCV cannot open this video") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # checked before --out is claimed: nothing left behind


@pytest.mark.shared_data
def test_onnx_model_predicts_what_the_checkpoint_predicts(tmp_path, shared_data, shared_weights):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("000000000139.jpg", "000000000632.jpg"):
        (images / name).write_bytes((shared_data / "coco128/images/val2017" / name).read_bytes())
    weights = str(shared_weights / "yolov5n.pt")
    assert main(["export", "--model", weights, "--out", str(tmp_path / "m.onnx")]) == 0
    results = {}
    for name, model in (("torch", weights), ("onnx", str(tmp_path / "m.onnx"))):
        assert main(["predict", "--model", model, "--source", str(images), "--out",
                     str(tmp_path / name), "--device", "cpu"]) == 0
        results[name] = json.loads((tmp_path / name / "predictions.json").read_text())
    assert len(results["torch"]) == len(results["onnx"]) > 5
    key = lambda r: (r["image_id"], -r["score"])  # noqa: E731
    for ours, theirs in zip(sorted(results["torch"], key=key), sorted(results["onnx"], key=key)):
        assert (ours["image_id"], ours["category_id"]) == (theirs["image_id"], theirs["category_id"])
        np.testing.assert_allclose(ours["bbox"], theirs["bbox"], atol=1e-3)
        assert abs(ours["score"] - theirs["score"]) < 1e-4
    assert {r["category_id"] for r in results["onnx"]} <= set(range(1, 91))  # COCO ids
