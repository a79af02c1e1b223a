"""ONNX export: onnxruntime gives PyTorch's detections (boxes within 1e-3 px, scores within
1e-4, after NMS) for every family, 1, 3 and 4 input channels, NMS outside or inside the graph,
on real images (coco128) and on batches of other sizes than the traced one."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from detector.cli import main
from detector.data.images import load_image, to_float
from detector.errors import CheckpointError
from detector.export import export_model, load_exported
from detector.models.loading import load_model
from detector.models.registry import build_detector
from parity import assert_same_detections

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
COCO_IMAGES = ("000000000139.jpg", "000000000285.jpg", "000000000632.jpg")


def coco_images(shared_data, channels: int) -> list[torch.Tensor]:
    """Three real images of different sizes as [C,H,W] floats: RGB, its grey (1 channel) or
    RGB + grey standing in for a thermal channel (4)."""
    images = []
    for name in COCO_IMAGES:
        rgb = to_float(load_image(shared_data / "coco128/images/val2017" / name, 3))
        grey = to_float(load_image(shared_data / "coco128/images/val2017" / name, 1))
        pixels = {1: grey, 3: rgb, 4: np.concatenate((rgb, grey), 2)}[channels]
        images.append(torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))))
    return images


def calibrate(detector, images: list[torch.Tensor], *class_convs: nn.Conv2d) -> None:
    """Make a fresh network score like a trained one: BatchNorm statistics measured on
    `images` (a fresh network's are 0 and 1, so its features barely vary between locations) and
    wider class weights. Otherwise NMS and top-k choose among equal scores, in any order."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in class_convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
            if conv.bias is not None:
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) - 3)
        for module in detector.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # the plain average of what it sees
        empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
        detector.train()(images, [empty] * len(images))
    detector.eval()


def exported_matches(detector, images, tmp_path, nms: bool):
    path = tmp_path / f"model_{nms}.onnx"
    export_model(detector, "onnx", path, nms=nms)
    onnx_detector = load_exported(path)
    with torch.no_grad():
        if onnx_detector.plan.dynamic_batch:
            reference = detector(images)
        else:  # torchvision pads a batch to its largest image, which changes the features
            reference = [detector([image])[0] for image in images]
    assert_same_detections(reference, onnx_detector(images))
    assert sum(len(found["boxes"]) for found in reference) > 10
    return onnx_detector


@pytest.mark.shared_data
@pytest.mark.parametrize("nms", [False, True])
def test_yolov5n_onnx_matches_pytorch_on_coco128(shared_data, shared_weights, tmp_path, nms):
    detector = load_model(shared_weights / "yolov5n.pt")
    detector.image_size = 320  # a quicker test; build_args carry it into the exported file
    images = coco_images(shared_data, 3) + coco_images(shared_data, 3)[:1]  # a batch of two
    onnx_detector = exported_matches(detector.eval(), images, tmp_path, nms)
    assert onnx_detector.class_names[0] == "person"


@pytest.mark.shared_data
@pytest.mark.parametrize("channels,nms", [(1, False), (3, True), (4, True)])
def test_ultralytics_onnx_matches_pytorch(shared_data, tmp_path, channels, nms):
    torch.manual_seed(0)
    detector = build_detector("yolov8n", ["a", "b", "c"], in_channels=channels, image_size=96)
    images = coco_images(shared_data, channels)
    calibrate(detector, images, *[branch[-1] for branch in detector.model.model[-1].cv3])
    exported_matches(detector, images, tmp_path, nms)


@pytest.mark.shared_data
def test_nms_free_head_exports_its_own_detections(shared_data, tmp_path):
    torch.manual_seed(0)
    detector = build_detector("yolo26n", ["a", "b"], image_size=64)
    images = coco_images(shared_data, 3)
    calibrate(detector, images, *[branch[-1] for branch in detector.model.model[-1].one2one_cv3])
    exported_matches(detector, images, tmp_path, nms=True)


@pytest.mark.shared_data
@pytest.mark.parametrize("channels", [1, 4])
def test_faster_rcnn_onnx_matches_pytorch(shared_data, tmp_path, channels):
    torch.manual_seed(0)
    detector = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", ["a", "b"],
                              in_channels=channels, min_size=160, max_size=200)
    images = coco_images(shared_data, channels)
    calibrate(detector, images, detector.model.rpn.head.cls_logits,
              detector.model.roi_heads.box_predictor.cls_score)
    onnx_detector = exported_matches(detector, images, tmp_path, nms=False)
    assert not onnx_detector.plan.dynamic_batch  # torchvision's heads loop over images in Python


def test_wrong_channels_and_training_are_refused(tmp_path):
    detector = build_detector("yolov5n", ["a"], image_size=64, in_channels=4).eval()
    export_model(detector, "onnx", tmp_path / "m.onnx")
    onnx_detector = load_exported(tmp_path / "m.onnx")
    assert onnx_detector.modalities == ["rgb", "lwir"]
    with pytest.raises(ValueError, match=r"expected \[4,H,W\] \(rgb \+ lwir\)"):
        onnx_detector([torch.rand(3, 40, 40)])
    with pytest.raises(RuntimeError, match="cannot train"):
        onnx_detector.train()


class _RunsShell:
    def __reduce__(self):
        import os

        return (os.system, ("echo hacked",))


def test_export_cli_and_its_bad_inputs(tmp_path, capsys):
    from detector.checkpoint import describe_detector, save_checkpoint

    detector = build_detector("yolov5n", ["a", "b"], image_size=64)
    model = tmp_path / "model.pt"
    save_checkpoint(model, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(model), "--format", "onnx", "--out", str(out), "--nms"]) == 0
    assert "detections (NMS inside), dynamic batch" in capsys.readouterr().out
    assert load_exported(out).plan.graph_nms
    assert main(["export", "--model", str(model), "--out", str(out)]) == 0  # its own file: rewritten

    def one_error(argv, expected):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err

    one_error(["export", "--model", str(model), "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
              "unknown export format 'tflite'; valid formats: onnx")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model.read_bytes()[:2000])
    one_error(["export", "--model", str(truncated), "--out", str(tmp_path / "t.onnx")],
              f"{truncated}: not a checkpoint detector can load")
    hostile = tmp_path / "hostile.pt"
    torch.save({"model": _RunsShell()}, hostile, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    one_error(["export", "--model", str(hostile), "--out", str(tmp_path / "h.onnx")], "system")
    main(["export", "--model", str(hostile), "--out", str(tmp_path / "h.onnx")])
    err = capsys.readouterr().err  # without torch's advice, which is to load it unsafely
    assert "weights_only" not in err and "trusted source" not in err and len(err) < 700, err
    theirs = tmp_path / "theirs.onnx"
    theirs.write_bytes(b"someone else's file")
    one_error(["export", "--model", str(model), "--out", str(theirs)], "was not written by")
    assert theirs.read_bytes() == b"someone else's file"
    one_error(["export", "--model", str(model), "--out", str(tmp_path / "m.bin")], "should end in .onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(out.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        load_exported(cut)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
