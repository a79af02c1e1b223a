"""Classic YOLOv5 networks from their model yaml (for yolov5/adapter.py).

`build_layers(yaml, num_classes, in_channels)` builds YOLOv5's `model.<i>` layers from a yaml
dict (backbone + head rows of [from, repeats, type, args]) with ultralytics' Conv / C3 / SPPF /
Concat and the anchor-based head in head.py; `yolov5_yaml` gives YOLOv5 v6's layout at a
scale (what a from-scratch `yolov5n` builds; checkpoints bring their own yaml).
"""

from __future__ import annotations

import copy
import math

from torch import nn
from ultralytics.nn.modules import C3, SPPF, Concat, Conv

from detector.errors import ConfigError
from detector.models.yolov5.head import AnchorDetect

LAYER_TYPES = {"Conv": Conv, "C3": C3, "SPPF": SPPF, "Concat": Concat, "nn.Upsample": nn.Upsample,
               "Detect": AnchorDetect}
# Non-numeric yaml arguments YOLOv5 eval()s; we look them up instead.
YAML_WORDS = ("None", "nc", "anchors")
# YOLOv5 v6's model layout (models/yolov5{n,s,m,l,x}.yaml differ only in the two multiples):
# what a from-scratch `yolov5n` builds. Checkpoints bring their own yaml.
YOLOV5_LAYOUT = {
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                 [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                 [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]],
                 [-1, 1, "SPPF", [1024, 5]]],
    "head": [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
             [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
             [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
             [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]],
             [-1, 1, "Conv", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
             [-1, 1, "Conv", [512, 3, 2]], [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],
             [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]],
}


def yolov5_yaml(depth_multiple: float, width_multiple: float, num_classes: int = 80) -> dict:
    """A YOLOv5 v6 model yaml dict at the given scale (yolov5n: 0.33, 0.25)."""
    return {"nc": num_classes, "depth_multiple": depth_multiple, "width_multiple": width_multiple,
            **copy.deepcopy(YOLOV5_LAYOUT)}


def _scaled_channels(channels: int, width_multiple: float) -> int:
    return math.ceil(channels * width_multiple / 8) * 8


def build_layers(yaml: dict, num_classes: int, in_channels: int):
    """Layers from a YOLOv5 model yaml (backbone + head lists of [from, repeats, type, args]).

    Returns (layers: nn.ModuleList, sources: [from per layer], saved: set of layer indices
    whose outputs later layers read). Names of parameters follow YOLOv5's `model.<i>...`.
    """
    if yaml.get("activation"):
        raise ConfigError(f"yaml activation {yaml['activation']!r} is not supported (only SiLU)")
    depth, width = yaml["depth_multiple"], yaml["width_multiple"]
    anchors = yaml["anchors"]
    channels, layers, sources, saved = [in_channels], [], [], set()
    for index, (source, repeats, type_name, args) in enumerate(yaml["backbone"] + yaml["head"]):
        if type_name not in LAYER_TYPES:
            raise ConfigError(f"YOLOv5 yaml layer {index}: unsupported module {type_name!r} "
                              f"(supported: {', '.join(LAYER_TYPES)})")
        layer_type = LAYER_TYPES[type_name]
        args = [_yaml_word(a, num_classes, anchors) for a in args]
        repeats = max(round(repeats * depth), 1) if repeats > 1 else repeats
        if layer_type in (Conv, C3, SPPF):
            out = _scaled_channels(args[0], width)
            args = [channels[source], out, *args[1:]]
            if layer_type is C3:
                args.insert(2, repeats)
                repeats = 1
        elif layer_type is Concat:
            out = sum(channels[s] for s in source)
        elif layer_type is AnchorDetect:
            args = [num_classes, args[1], [channels[s] for s in source]]
            out = None
        else:
            out = channels[source]
        layer = nn.Sequential(*(layer_type(*args) for _ in range(repeats))) if repeats > 1 \
            else layer_type(*args)
        if layer_type is SPPF:
            # YOLOv5's SPPF activates cv1; ultralytics' SPPF (since YOLO26) does not, and its own
            # parse_model patches legacy yaml rows back the same way
            layer.cv1.act = nn.SiLU()
        layers.append(layer)
        sources.append(source)
        saved.update(s % index for s in ([source] if isinstance(source, int) else source) if s != -1)
        if index == 0:
            channels = []
        channels.append(out)
    return nn.ModuleList(layers), sources, saved


def _yaml_word(value, num_classes, anchors):
    # Other strings ('nearest') are plain string arguments, as in YOLOv5 when eval() fails.
    if not isinstance(value, str) or value not in YAML_WORDS:
        return value
    return {"None": None, "nc": num_classes, "anchors": anchors}[value]
