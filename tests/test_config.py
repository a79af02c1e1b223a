"""Config: YAML + dotted overrides -> frozen dataclasses; unknown keys and wrong types refused."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from detector.config import Config, config_to_dict, load_config
from detector.errors import ConfigError

BASE = """\
model:
  arch: fasterrcnn_mobilenet_v3_large_320_fpn
  class_map: auto
data:
  train: {source: datasets/bccd.yaml, split: train}
  val: datasets/bccd.yaml
  augment: [hflip, {scale: {min: 0.5, max: 1.5}}]
train:
  epochs: 4
  lr: 0.02
  lr_mult: {backbone: 0.1}
"""


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_defaults_and_sources(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert isinstance(config, Config)
    assert config.model.arch == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert config.model.class_map == "auto"
    assert config.data.train.source == "datasets/bccd.yaml" and config.data.train.split == "train"
    assert config.data.val.source == "datasets/bccd.yaml" and config.data.val.format == "auto"
    assert config.data.augment[1]["scale"]["max"] == 1.5
    assert config.train.epochs == 4 and config.train.lr == 0.02
    assert config.train.optimizer == "sgd" and config.train.batch_size == 4  # defaults


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.lr = 1.0
    with pytest.raises(TypeError):
        config.train.lr_mult["backbone"] = 1.0
    assert isinstance(config.data.augment, tuple)


def test_unknown_key_suggests_the_nearest_and_names_file_and_line(tmp_path):
    path = write(tmp_path, BASE.replace("  epochs: 4", "  epoch: 4"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"{path}:9" in message
    assert "unknown key 'train.epoch'" in message and "did you mean 'train.epochs'?" in message


def test_unknown_top_level_and_nested_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'model'\?"):
        load_config(write(tmp_path, BASE + "modle: {}\n"))
    with pytest.raises(ConfigError, match=r"data.train.splt.*did you mean 'data.train.split'"):
        load_config(write(tmp_path, BASE.replace("split: train", "splt: train")))


def test_overrides_are_yaml_scalars(tmp_path):
    config = load_config(write(tmp_path, BASE), ["train.lr=1e-3", "train.amp=false",
                                                 "train.optimizer=adamw", "model.weights=a.pth",
                                                 "data.modalities=[rgb, lwir]", "train.clip_grad=null"])
    assert config.train.lr == pytest.approx(0.001)
    assert config.train.amp is False
    assert config.train.optimizer == "adamw"
    assert config.model.weights == "a.pth"
    assert config.data.modalities == ("rgb", "lwir")
    assert config.train.clip_grad is None


def test_override_of_unknown_key_is_refused_naming_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'train.lrr=0.1'.*did you mean 'train.lr'"):
        load_config(write(tmp_path, BASE), ["train.lrr=0.1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(write(tmp_path, BASE), ["train.lr"])


def test_wrong_types_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"run.yaml:9: train.epochs: expected an integer or null, got 'four'"):
        load_config(write(tmp_path, BASE.replace("epochs: 4", "epochs: four")))
    with pytest.raises(ConfigError, match=r"train.optimizer: expected 'sgd' or 'adamw'"):
        load_config(write(tmp_path, BASE), ["train.optimizer=adam"])
    with pytest.raises(ConfigError, match=r"train.amp: expected true or false"):
        load_config(write(tmp_path, BASE), ["train.amp=1"])
    with pytest.raises(ConfigError, match=r"train.lr_mult.backbone: expected a number"):
        load_config(write(tmp_path, BASE), ["train.lr_mult.backbone=fast"])


def test_missing_and_inconsistent_keys(tmp_path):
    with pytest.raises(ConfigError, match="missing key 'data.train'"):
        load_config(write(tmp_path, "model: {arch: x}\ndata: {}\ntrain: {epochs: 1}\n"))
    with pytest.raises(ConfigError, match="needs 'arch' or 'weights'"):
        load_config(write(tmp_path, BASE), ["model.arch=null"])
    stages = "[{epochs: 1, train: [head]}, {epochs: 2, train: [head, neck]}]"
    with pytest.raises(ConfigError, match="stages add up to 3"):
        load_config(write(tmp_path, BASE), [f"train.stages={stages}"])
    config = load_config(write(tmp_path, BASE), [f"train.stages={stages}", "train.epochs=null"])
    assert [s.epochs for s in config.train.stages] == [1, 2]
    assert config.train.stages[1].train == ("head", "neck")
    with pytest.raises(ConfigError, match="not both"):
        load_config(write(tmp_path, BASE), [f"train.stages={stages}", "train.epochs=null",
                                            "train.preset=finetune_top"])
    with pytest.raises(ConfigError, match="train.batch_size: expected at least 1"):
        load_config(write(tmp_path, BASE), ["train.batch_size=0"])


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: not valid YAML"):
        load_config(write(tmp_path, "model:\n  arch: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_config_to_dict_round_trips(tmp_path):
    config = load_config(write(tmp_path, BASE), ["train.stages=[{epochs: 4, train: [head]}]",
                                                 "train.epochs=null"])
    plain = config_to_dict(config)
    text = yaml.safe_dump(plain)  # plain data only: safe_dump would refuse anything else
    assert plain["train"]["stages"][0]["train"] == ["head"]
    assert load_config(write(tmp_path, text, "resolved.yaml")) == config


@pytest.mark.parametrize("name", ["fasterrcnn_custom", "fasterrcnn_bccd", "synthetic_tiny"])
def test_shipped_training_recipes_are_valid(name):
    from pathlib import Path

    config = load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert config.model.arch.startswith("fasterrcnn_")
