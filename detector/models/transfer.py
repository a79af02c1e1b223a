"""A classic YOLOv5 model's layers before the head, carried into the matching ultralytics arch
(yolov5n -> yolov5nu): `detector convert --to yolov5nu`."""

from __future__ import annotations

from torch import nn

from detector.errors import ConfigError


def carry_yolov5_layers(source, arch: str):
    """A fresh ultralytics `arch` detector whose layers before the head are `source`'s (a classic
    YOLOv5Detector); returns (detector, number of tensors copied). Raises ConfigError when the
    two networks' layers differ (e.g. yolov5s weights into yolov5nu)."""
    from detector.models.registry import build_detector, list_models
    from detector.models.yolov5.adapter import YOLOv5Detector

    targets = list_models(family="yolo")
    if arch not in targets:
        raise ConfigError(f"--to {arch}: expected ir, rgbt or an ultralytics arch "
                          f"({', '.join(targets)})")
    if not isinstance(source, YOLOv5Detector):
        raise ConfigError(f"--to {arch}: carrying layers into an ultralytics model needs a classic "
                          f"(anchor-based) YOLOv5 model; got a {type(source).__name__}")
    target = build_detector(arch, source.class_names, weights=None, in_channels=source.in_channels)
    source_layers = list(source.model)[:-1]
    target_layers = list(target.model.model)[:-1]  # ultralytics/adapter.py's YOLODetector wraps DetectionModel
    if len(source_layers) != len(target_layers):
        raise ConfigError(f"--to {arch}: the YOLOv5 model has {len(source_layers)} layers before "
                          f"its head, {arch} has {len(target_layers)}")
    copied = 0
    for index, (from_layer, to_layer) in enumerate(zip(source_layers, target_layers)):
        _check_same_layer(index, from_layer, to_layer, arch)
        to_layer.load_state_dict(from_layer.state_dict())
        copied += len(from_layer.state_dict())
    target.modalities = list(source.modalities)
    return target, copied


def _check_same_layer(index: int, from_layer: nn.Module, to_layer: nn.Module, arch: str) -> None:
    theirs, ours = to_layer.state_dict(), from_layer.state_dict()
    if type(from_layer).__name__ != type(to_layer).__name__ or list(theirs) != list(ours):
        raise ConfigError(f"--to {arch}: layer {index} differs ({type(from_layer).__name__} vs "
                          f"{type(to_layer).__name__} in {arch})")
    for name, tensor in ours.items():
        if theirs[name].shape != tensor.shape:
            raise ConfigError(f"--to {arch}: layer {index} {name} has shape {list(tensor.shape)} "
                              f"here but {list(theirs[name].shape)} in {arch} (another model scale?)")
