"""`detector eval` with an RGB model on LWIR or RGB+LWIR data adapts the stem as `convert` does."""

from __future__ import annotations

import json

import pytest
import torch

from detector.checkpoint import describe_detector, save_checkpoint
from detector.cli import main
from detector.data.synthetic import make_synthetic_dataset
from detector.models.registry import build_detector


@pytest.fixture
def rgb_checkpoint_and_card(tmp_path):
    card = make_synthetic_dataset(tmp_path / "data", num_train=0, num_val=3)
    torch.manual_seed(0)
    detector = build_detector("yolov5n", ["circle", "square", "triangle"], image_size=160)
    path = tmp_path / "rgb.pt"
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    return path, card


@pytest.mark.parametrize("modalities, target, init", [(["lwir"], "ir", "sum"),
                                                      (["rgb", "lwir"], "rgbt", "zero")])
def test_rgb_model_on_thermal_data_equals_the_converted_model(tmp_path, rgb_checkpoint_and_card,
                                                               capsys, modalities, target, init):
    rgb, card = rgb_checkpoint_and_card
    converted = tmp_path / f"{target}.pt"
    assert main(["convert", "--model", str(rgb), "--to", target, "--init", init,
                 "--out", str(converted)]) == 0
    results = {}
    for name, model in (("auto", rgb), ("converted", converted)):
        results[name] = tmp_path / f"{name}.json"
        assert main(["eval", "--model", str(model), "--data", str(card), "--split", "val",
                     "--modalities", *modalities, "--device", "cpu",
                     "--results", str(results[name])]) == 0
    out = capsys.readouterr().out
    assert f"its stem was adapted with the `{init}` init" in out
    auto = json.loads(results["auto"].read_text())
    assert auto, "the random-init model still returns low-score boxes"
    assert auto == json.loads(results["converted"].read_text())


def test_a_one_channel_model_on_rgb_data_is_refused(tmp_path, rgb_checkpoint_and_card, capsys):
    rgb, card = rgb_checkpoint_and_card
    ir = tmp_path / "ir.pt"
    assert main(["convert", "--model", str(rgb), "--to", "ir", "--out", str(ir)]) == 0
    code = main(["eval", "--model", str(ir), "--data", str(card), "--split", "val",
                 "--modalities", "rgb", "--device", "cpu"])
    assert code == 2
    assert "takes 1 input channels, the data has 3 (rgb)" in capsys.readouterr().err
