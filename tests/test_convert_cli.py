"""`detector convert`: stem conversion (ir, rgbt) and classic YOLOv5 -> ultralytics yolov5nu."""

from __future__ import annotations

import pytest
import torch

from detector.checkpoint import describe_detector, save_checkpoint
from detector.cli import main
from detector.models.loading import load_model
from detector.models.registry import build_detector
from detector.models.yolov5.layers import yolov5_yaml

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (tests/conftest.py)

NAMES = ["person", "car", "bicycle"]


def _save(detector, path):
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    return path


def _classic(tmp_path, width=0.0625):
    """A classic YOLOv5 (random weights, YOLOv5 v6 layout) saved as a run checkpoint."""
    torch.manual_seed(0)
    detector = build_detector("yolov5_classic", NAMES, yaml=yolov5_yaml(0.33, width, 3),
                              image_size=64).eval()
    with torch.no_grad():  # non-trivial BN statistics, so copying them matters
        for module in detector.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return detector, _save(detector, tmp_path / "classic.pt")


def _features(network_layers, layer_indices, run):
    """Outputs of `network_layers[i]` for i in layer_indices while `run()` executes."""
    captured = {}
    hooks = [network_layers[i].register_forward_hook(
        lambda module, inputs, output, i=i: captured.__setitem__(i, output)) for i in layer_indices]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def _convert(*argv) -> int:
    return main(["convert", *map(str, argv)])


def test_ir_sum_gives_rgb_output_on_grey(tmp_path):
    source, path = _classic(tmp_path)
    out = tmp_path / "ir.pt"
    assert _convert("--model", path, "--to", "ir", "--out", out) == 0
    converted = load_model(out)
    assert converted.in_channels == 1 and converted.modalities == ["lwir"]
    converted.conf_threshold = source.conf_threshold = 0.0
    grey = torch.rand(1, 40, 56)
    expected, got = source([grey.repeat(3, 1, 1)])[0], converted([grey])[0]
    assert torch.allclose(expected["scores"], got["scores"], atol=1e-5)
    assert torch.allclose(expected["boxes"], got["boxes"], atol=1e-3)


def test_rgbt_zero_gives_rgb_output(tmp_path):
    source, path = _classic(tmp_path)
    out = tmp_path / "rgbt.pt"
    assert _convert("--model", path, "--to", "rgbt", "--out", out) == 0
    converted = load_model(out)
    assert converted.in_channels == 4 and converted.modalities == ["rgb", "lwir"]
    converted.conf_threshold = source.conf_threshold = 0.0
    rgb, thermal = torch.rand(3, 40, 56), torch.rand(1, 40, 56)
    expected, got = source([rgb])[0], converted([torch.cat([rgb, thermal])])[0]
    assert torch.equal(expected["labels"], got["labels"])
    assert torch.allclose(expected["boxes"], got["boxes"], atol=1e-4)


def test_yolov5_to_yolov5nu_carries_backbone_and_neck(tmp_path):
    source, path = _classic(tmp_path, width=0.25)  # yolov5n's scale, what yolov5nu is
    out = tmp_path / "yolov5nu.pt"
    assert _convert("--model", path, "--to", "yolov5nu", "--out", out) == 0
    converted = load_model(out)
    assert converted.arch == "yolov5nu" and converted.class_names == NAMES
    batch = torch.rand(1, 3, 64, 64)
    necks = [17, 20, 23]  # the layers that feed the head
    theirs = _features(converted.model.model, necks, lambda: converted.model(batch))
    ours = _features(source.model, necks, lambda: source.raw_outputs(batch))
    for index in necks:
        assert torch.allclose(ours[index], theirs[index], atol=1e-5), index
    losses = converted.train()([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 30.0]]),
                                                         "labels": torch.tensor([1])}])
    assert torch.isfinite(sum(losses.values()))


def test_convert_errors_are_one_line(tmp_path, capsys):
    _, path = _classic(tmp_path)
    out = tmp_path / "x.pt"
    assert _convert("--model", path, "--to", "yolov5nu", "--init", "sum", "--out", out) == 2
    assert "--init applies to --to ir / rgbt" in capsys.readouterr().err
    assert _convert("--model", path, "--to", "nowhere", "--out", out) == 2
    assert "expected ir, rgbt or an ultralytics arch" in capsys.readouterr().err
    assert _convert("--model", path, "--to", "yolov5nu", "--out", out) == 2  # width 0.0625 != n
    err = capsys.readouterr().err
    assert err.startswith("error: --to yolov5nu: layer 0") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.shared_data
def test_official_yolov5n_to_yolov5nu(tmp_path, shared_weights):
    out = tmp_path / "yolov5nu.pt"
    assert _convert("--model", shared_weights / "yolov5n.pt", "--to", "yolov5nu", "--out", out) == 0
    source = load_model(shared_weights / "yolov5n.pt")
    converted = load_model(out)
    assert converted.arch == "yolov5nu" and len(converted.class_names) == 80
    batch = torch.rand(1, 3, 96, 128)
    theirs = _features(converted.model.model, [23], lambda: converted.model(batch))
    ours = _features(source.model, [23], lambda: source.raw_outputs(batch))
    assert torch.allclose(ours[23], theirs[23], atol=1e-4)
