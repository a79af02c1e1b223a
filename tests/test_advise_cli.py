"""`detector advise` end to end: the report, the recipe (loads, trains), and bad input
(an empty data set, one without boxes, a model without BatchNorm, 4-channel data with an RGB
model and with a 1-channel one, a foreign --out file)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from detector.advisor import advise
from detector.advisor.candidate import Candidate
from detector.advisor.recipe import recipe_dict, write_recipe
from detector.advisor.report import format_report, layers_table
from detector.cli import main
from detector.config import config_from_dict, load_config
from detector.data.synthetic import make_synthetic_dataset
from detector.errors import ConfigError
from tests.toy_detector import ToyDetector


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("advise") / "data", num_train=8,
                                  num_val=4, size=(96, 80))


def _toy(in_channels: int = 3, batchnorm: bool = True) -> ToyDetector:
    torch.manual_seed(0)
    toy = ToyDetector(["circle", "square"], in_channels=in_channels)
    if not batchnorm:
        toy.stem[1] = nn.Identity()
        toy.stage0[1] = nn.Identity()
    return toy.eval()


@pytest.fixture
def toy_models(monkeypatch):
    """--model toy / toy_nobn / toy_grey resolve to ToyDetectors (not in the model registry)."""
    models = {"toy": _toy(), "toy_nobn": _toy(batchnorm=False), "toy_grey": _toy(in_channels=1)}

    def load(spec, class_names):
        return Candidate(spec, models[spec], ["circle", "square"], {"arch": "toy"})

    monkeypatch.setattr("detector.advisor.advisor.load_candidate", load)
    return models


def test_rgb_plus_lwir_data_with_an_rgb_model_gets_the_zero_stem(synthetic, toy_models):
    advice = advise(str(synthetic), models=["toy"], max_images=4, epochs=4)
    chosen = advice.chosen
    assert advice.split == "train" and advice.val_split == "val"
    assert advice.channels.channels == 4 and advice.channels.bits == {"rgb": 8, "lwir": 16}
    assert chosen.stem_init == "zero" and "`zero` keeps the RGB filters" in chosen.stem_reason
    assert [p.view for p in chosen.profiles] == ["rgb", "lwir"]  # each modality on its own
    assert chosen.overlap == {"circle": "circle", "square": "square"}  # triangle is fresh
    data = recipe_dict(advice)
    assert data["model"]["stem_init"] == "zero" and data["model"]["class_map"] == "auto"
    assert data["data"]["modalities"] == ["rgb", "lwir"]
    config = config_from_dict(data)
    assert config.data.val.split == "val"
    report = format_report(advice)
    assert "quadrant: small + " in report and "stem: zero" in report
    table = layers_table(chosen).splitlines()
    assert table[0].split() == ["layer", "part", "channels", "gap", "rgb", "gap", "lwir", "max",
                                "ch"]
    assert [line.split()[:2] for line in table[2:]] == [["stem.1", "stem"],
                                                        ["stage0.1", "backbone.0"]]


def test_four_channels_into_a_one_channel_model_is_refused(synthetic, toy_models):
    with pytest.raises(ConfigError, match="--model toy_grey: the model takes 1 channels and the "
                                          "data has 4; a stem can only be adapted from a "
                                          "3-channel RGB model"):
        advise(str(synthetic), models=["toy_grey"], max_images=2)


def test_a_model_without_batchnorm_is_measured_at_the_input(synthetic, toy_models):
    advice = advise(str(synthetic), models=["toy_nobn"], modalities=["rgb"], max_images=4)
    report = format_report(advice)
    assert ("gap: the model has no BatchNorm layer, so no depth profile; measured instead: "
            "pixel statistics vs ImageNet pixel statistics") in report
    assert advice.chosen.plan.departure is None


def test_the_recipe_is_written_and_never_over_a_foreign_file(synthetic, toy_models, tmp_path):
    advice = advise(str(synthetic), models=["toy"], modalities=["rgb"], max_images=2, epochs=3)
    path = write_recipe(advice, tmp_path / "recipe.yaml", out_dir=str(tmp_path / "run"))
    config = load_config(path)
    assert config.train.out_dir == str(tmp_path / "run")
    write_recipe(advice, path)  # its own file: replaced
    foreign = tmp_path / "mine.yaml"
    foreign.write_text("model: {arch: x}\n")
    with pytest.raises(ConfigError, match="mine.yaml: exists and was not written by `detector "
                                          "advise`; not overwritten"):
        write_recipe(advice, foreign)
    assert foreign.read_text() == "model: {arch: x}\n"


def _coco(tmp_path, images, annotations):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


def test_empty_data_set_is_one_line(tmp_path, capsys):
    path = _coco(tmp_path, [], [])
    assert main(["advise", str(path), "--out", str(tmp_path / "r.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: the data set has no images; nothing to measure"]
    assert not (tmp_path / "r.yaml").exists()


def test_data_without_boxes_is_one_line(tmp_path, synthetic, capsys):
    image = next((synthetic.parent / "rgb" / "train").iterdir())
    (tmp_path / image.name).write_bytes(image.read_bytes())
    path = _coco(tmp_path, [{"id": 1, "file_name": image.name, "width": 96, "height": 80}], [])
    assert main(["advise", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the data set has 1 images but no labelled boxes; advise needs labels "
                        "to size the data and write a recipe")


def test_bad_flags_are_one_line(tmp_path, capsys):
    assert main(["advise", "x", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --epochs: expected at least 1, got 0"


@pytest.mark.shared_data
@pytest.mark.slow
def test_advise_then_train_the_recipe(synthetic, shared_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DETECTOR_WEIGHTS", str(shared_weights))
    recipe = tmp_path / "recipe.yaml"
    assert main(["advise", str(synthetic), "--modalities", "lwir", "--images", "4",
                 "--epochs", "2", "--image-size", "64", "--batch-size", "4", "--out", str(recipe),
                 "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "model: yolov5n (detector)" in out and "stem: sum" in out
    assert (tmp_path / "recipe_gap.png").stat().st_size > 0
    config = load_config(recipe, ["train.workers=0", "train.device=cpu", "train.amp=false"])
    assert config.model.stem_init == "sum" and config.model.class_map is None
    assert sum(stage.epochs for stage in config.train.stages) == 2
    assert main(["train", str(recipe), "train.workers=0", "train.device=cpu",
                 "train.amp=false"]) == 0
    assert (tmp_path / "run" / "last.pt").is_file()
