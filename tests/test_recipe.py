"""recipe.py: the one place a config becomes a run; fit's arguments are TrainConfig's fields."""

from __future__ import annotations

import dataclasses
import inspect

from detector.config import TrainConfig, config_from_dict
from detector.recipe import fit_arguments
from detector.train.engine import fit


def test_fit_takes_every_training_setting_with_the_same_default():
    parameters = inspect.signature(fit).parameters
    for f in dataclasses.fields(TrainConfig):
        if f.name == "out_dir":  # required by fit, defaulted by the config
            assert parameters["out_dir"].default is inspect.Parameter.empty
            continue
        assert f.name in parameters, f"fit has no argument for train.{f.name}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        fit_default = parameters[f.name].default
        if f.name == "lr_mult":  # a read-only mapping in the config, None (no multipliers) in fit
            assert not default and fit_default is None
            continue
        assert fit_default == default, f"train.{f.name}: config {default!r}, fit {fit_default!r}"


def test_fit_arguments_are_plain_and_complete():
    config = config_from_dict({
        "model": {"arch": "yolov8n"},
        "data": {"train": "somewhere"},
        "train": {"stages": [{"epochs": 1, "train": ["head"]},
                             {"epochs": 2, "train": ["head", "backbone"],
                              "lr_mult": {"backbone": 0.1}}],
                  "lr": 0.02, "workers": 0},
    })
    arguments = fit_arguments(config)
    assert set(arguments) == {f.name for f in dataclasses.fields(TrainConfig)} - {"out_dir"}
    assert arguments["stages"] == [{"epochs": 1, "train": ["head"], "lr_mult": {}},
                                   {"epochs": 2, "train": ["head", "backbone"],
                                    "lr_mult": {"backbone": 0.1}}]
    assert arguments["lr"] == 0.02 and arguments["workers"] == 0 and arguments["adapt"] is None
    assert type(arguments["lr_mult"]) is dict
    inspect.signature(fit).bind(None, None, None, out_dir="x", **arguments)  # fit accepts them


def test_the_public_api_resolves_and_documents_itself():
    import detector

    for name in detector.__all__:
        value = getattr(detector, name)
        assert callable(value) and value.__doc__, name
        assert f"detector.{name}(" in detector.__doc__, f"{name} has no example in the API docstring"


def test_a_fresh_model_is_drawn_from_the_recipe_seed(tmp_path):
    """Every torchrun process builds its own model: the fresh layers must not depend on what
    the process drew before (tests/test_torchrun_cli.py relies on it)."""
    import torch
    import yaml

    from detector.config import load_config
    from detector.recipe import prepare_run
    from test_train_cli import make_yolo_dataset

    data = make_yolo_dataset(tmp_path / "data", size=64)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"arch": "yolov5n", "weights": None, "image_size": 64,
                  "options": {"image_size": 64}},
        "data": {"train": {"source": str(data), "split": "train"}},
        "train": {"epochs": 1, "seed": 5, "device": "cpu"}}))
    weights = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        weights.append(prepare_run(load_config(recipe)).detector.state_dict())
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    torch.manual_seed(1)
    other = prepare_run(load_config(recipe, ["train.seed=6"])).detector.state_dict()
    assert not torch.equal(other["model.24.m.0.weight"], weights[0]["model.24.m.0.weight"])
