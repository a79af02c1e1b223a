"""load_model: run checkpoints rebuilt from their own description, foreign files delegated,
clear errors listing what was tried."""

from __future__ import annotations

import pickle

import pytest
import torch

from detector.checkpoint import FORMAT_VERSION, save_checkpoint
from detector.errors import CheckpointError
from detector.models import loading, registry
from detector.models.loading import load_model
from toy_detector import ToyDetector


@pytest.fixture
def toy_arch():
    """Registers the toy detector as 'toy' for one test only (it is no real model)."""

    def build_toy(class_names, weights=None, backbone_weights=None, in_channels=3,
                  class_map=None, width=8):
        assert weights is None  # a run checkpoint is rebuilt from scratch, then loaded
        return ToyDetector(class_names, in_channels=in_channels, width=width)

    registry.register_model("toy", family="test")(build_toy)
    yield
    del registry._MODELS["toy"]


def checkpoint_of(detector, ema_weights=None):
    return {"format_version": FORMAT_VERSION, "arch": "toy", "class_names": detector.class_names,
            "in_channels": detector.in_channels, "modalities": ["lwir"],
            "build_args": detector.build_args(), "model": detector.state_dict(),
            "ema": {"updates": 3, "decay": 0.9, "ramp": 10.0, "model": ema_weights}
            if ema_weights else None, "epoch": 1}


def test_run_checkpoint_is_rebuilt_with_its_build_args(tmp_path, toy_arch):
    torch.manual_seed(1)
    trained = ToyDetector(["cat", "dog", "cow"], in_channels=1, width=6)
    save_checkpoint(tmp_path / "last.pt", checkpoint_of(trained))
    loaded = load_model(tmp_path / "last.pt")
    assert isinstance(loaded, ToyDetector) and not loaded.training
    assert loaded.class_names == ["cat", "dog", "cow"] and loaded.width == 6
    assert loaded.in_channels == 1 and loaded.modalities == ["lwir"]
    for name, value in trained.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def test_ema_weights_are_preferred(tmp_path, toy_arch):
    trained = ToyDetector(["a"])
    ema = {k: v + 1 if v.dtype.is_floating_point else v for k, v in trained.state_dict().items()}
    save_checkpoint(tmp_path / "best.pt", checkpoint_of(trained, ema_weights=ema))
    loaded = load_model(tmp_path / "best.pt")
    assert torch.equal(loaded.head.weight, trained.head.weight + 1)


def test_foreign_files_go_to_the_family_importers(tmp_path, monkeypatch):
    foreign = tmp_path / "yolo.pt"
    with open(foreign, "wb") as f:
        pickle.dump({"model": "something pickled by another program"}, f, protocol=2)
    calls = []

    def not_mine(path):
        calls.append(("first", path))
        return None

    def mine(path):
        calls.append(("second", path))
        return ToyDetector(["x", "y"])

    monkeypatch.setattr(loading, "FOREIGN_IMPORTERS", {"first": not_mine, "second": mine})
    detector = load_model(foreign)
    assert detector.class_names == ["x", "y"] and not detector.training
    assert calls == [("first", foreign), ("second", foreign)]


def test_unloadable_file_lists_what_was_tried(tmp_path, monkeypatch):
    plain = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, plain)

    def refuses(path):
        raise CheckpointError(f"{path}: not a YOLOv5 checkpoint (no 'model' entry)")

    monkeypatch.setattr(loading, "FOREIGN_IMPORTERS",
                        {"yolov5": refuses, "ultralytics": lambda path: None})
    with pytest.raises(CheckpointError) as error:
        load_model(plain)
    message = str(error.value)
    assert message.startswith(f"{plain}: not a checkpoint detector can load; tried: run checkpoint")
    assert "yolov5 (" in message and "ultralytics (not a ultralytics checkpoint)" in message


def test_missing_importer_module_is_reported_not_raised(tmp_path, monkeypatch):
    plain = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    monkeypatch.setattr(loading, "FOREIGN_IMPORTERS",
                        {"nothing": loading._lazy_importer("detector.models.no_such_family")})
    with pytest.raises(CheckpointError, match=r"nothing \(importer not installed\)"):
        load_model(plain)


def test_unknown_spec(tmp_path):
    with pytest.raises(CheckpointError, match="no_such_model_or_file"):
        load_model("no_such_model_or_file")
