"""The ultralytics network of a model yaml: the registered archs' yamls, reading a yaml, building
ultralytics' `DetectionModel` from it, and what in a yaml fixes the layers (to tell whether a
checkpoint holds the network an arch names).
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from detector.errors import ConfigError

# Registered archs: name -> ultralytics model yaml (the letter picks the scale of the family yaml).
ARCH_YAMLS = {
    "yolov8n": "yolov8n.yaml", "yolov8s": "yolov8s.yaml", "yolov8m": "yolov8m.yaml",
    "yolo11n": "yolo11n.yaml", "yolo11s": "yolo11s.yaml", "yolo11m": "yolo11m.yaml",
    "yolov5nu": "yolov5nu.yaml", "yolov5su": "yolov5su.yaml",
    "yolov10n": "yolov10n.yaml", "yolo26n": "yolo26n.yaml",
}


def quiet_ultralytics() -> None:
    """Import ultralytics with its logger at warnings only (it logs every layer it builds)."""
    import logging

    from ultralytics.utils import LOGGER

    LOGGER.setLevel(logging.WARNING)


def load_model_yaml(spec: str | Path | dict) -> dict:
    """A model yaml as a plain dict: an ultralytics name ('yolov8n.yaml', the scale letter picks
    the scale), a path to a yaml file, or a dict (copied)."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    quiet_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    try:
        return yaml_model_load(str(spec))
    except (FileNotFoundError, OSError) as e:
        raise ConfigError(f"{spec}: no such model yaml (a file, or an ultralytics model name such "
                          "as yolov8n.yaml)") from e


def build_network(cfg: dict, in_channels: int, num_classes: int) -> nn.Module:
    """ultralytics' DetectionModel for the yaml `cfg` with `in_channels` inputs and `num_classes`."""
    quiet_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    cfg = copy.deepcopy(cfg)  # DetectionModel writes nc and channels into the dict it gets
    cfg["nc"] = num_classes
    try:
        model = DetectionModel(cfg, ch=in_channels, nc=num_classes, verbose=False)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"model yaml {cfg.get('yaml_file', '<dict>')}: cannot build it ({e})") from e
    from ultralytics.nn.modules import Detect

    if not isinstance(model.model[-1], Detect):
        raise ConfigError(f"model yaml {cfg.get('yaml_file', '<dict>')}: its last layer is "
                          f"{type(model.model[-1]).__name__}, not a Detect head")
    return model


def architecture(cfg: dict) -> tuple:
    """What fixes the network's layers in a yaml (not nc, channels or file name)."""
    scale = cfg.get("scale") or ""
    scales = cfg.get("scales") or {}
    return (repr(cfg.get("backbone")), repr(cfg.get("head")), repr(scales.get(scale) if scales else None),
            repr(cfg.get("depth_multiple")), repr(cfg.get("width_multiple")),
            cfg.get("end2end"), cfg.get("reg_max"))
