"""Classic (anchor-based) YOLOv5 checkpoints behind the Detector contract.

ultralytics 8 no longer loads YOLOv5's own .pt files (they pickle classes from YOLOv5's
`models.*` package). Here such a file is read by the restricted unpickler (nothing in it runs),
the network is rebuilt from the checkpoint's own `yaml` dict with ultralytics' Conv / C3 / SPPF /
Concat modules plus the anchor-based head in head.py, and the weights are loaded name for
name (any mismatch is a CheckpointError).

Eval mode letterboxes each image like YOLOv5's val.py with rectangular batches (long side to
`image_size`, grey 114 padding to a stride multiple plus half a stride), runs the network, applies
YOLOv5's NMS (conf 0.001, IoU 0.6, 300 detections, multi-label) and maps boxes back to the input
image's pixels. Train mode letterboxes to a square `image_size` and returns YOLOv5's loss.
Inputs are RGB in 0..1 with no normalisation (YOLOv5's convention).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from detector.boxes import xyxy_to_cxcywh
from detector.errors import CheckpointError, ConfigError
from detector.models.detector import Detector, default_modalities
from detector.models.letterbox import letterbox, unletterbox
from detector.models.registry import register_model
from detector.models.safe_unpickle import Record, RefusedGlobal, load_pickled
from detector.models.yolov5.head import non_max_suppression
from detector.models.yolov5.layers import build_layers, yolov5_yaml  # noqa: F401 (re-exported)
from detector.models.yolov5.loss import AnchorLoss

ARCH = "yolov5_classic"
# YOLOv5's classes live in its `models` and `utils` packages.
YOLOV5_PREFIXES = ("models.", "utils.")
BATCHNORM_EPS, BATCHNORM_MOMENTUM = 1e-3, 0.03


class YOLOv5Detector(Detector):
    """A YOLOv5 network (`model`: ModuleList named like YOLOv5's) behind the Detector contract.

    image_size: long side in eval, square side in training; eval_pad: extra padding in strides
    (val.py's rect batches use 0.5); conf_threshold / iou_threshold / max_detections /
    multi_label: NMS settings of YOLOv5's val.py.
    """

    def eval_long_side(self) -> int | None:
        return int(self.image_size)  # _eval_shape: long side to image_size, then padding

    def for_inference(self) -> "YOLOv5Detector":
        """A copy with every Conv's BatchNorm folded into its convolution (YOLOv5's fuse)."""
        from ultralytics.nn.modules import Conv
        from ultralytics.utils.torch_utils import fuse_conv_and_bn

        fused = copy.deepcopy(self).eval()
        for module in fused.modules():
            if isinstance(module, Conv) and hasattr(module, "bn"):
                module.conv = fuse_conv_and_bn(module.conv, module.bn)
                del module.bn
                module.forward = module.forward_fuse
        return fused

    def __init__(self, class_names: list[str], yaml: dict, in_channels: int = 3,
                 image_size: int = 640, eval_pad: float = 0.5, conf_threshold: float = 0.001,
                 iou_threshold: float = 0.6, max_detections: int = 300, multi_label: bool = True):
        super().__init__()
        self.arch = ARCH
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.modalities = default_modalities(in_channels)
        self.yaml = copy.deepcopy(yaml)
        self.image_size = image_size
        self.eval_pad = eval_pad
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.multi_label = multi_label
        self.model, self.sources, self.saved = build_layers(self.yaml, len(class_names), in_channels)
        self.backbone_length = len(self.yaml["backbone"])
        for module in self.model.modules():
            if isinstance(module, nn.BatchNorm2d):  # YOLOv5's initialize_weights
                module.eps, module.momentum = BATCHNORM_EPS, BATCHNORM_MOMENTUM
        head = self.model[-1]
        with torch.no_grad():
            features = self._features(torch.zeros(1, in_channels, 256, 256))
        head.set_strides(torch.tensor([256 / f.shape[-2] for f in features]))
        head.initialize_biases()
        self.stride = int(head.stride.max())

    # --- network ---

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run every layer but the head; returns the head's inputs."""
        outputs = []
        for layer, source in zip(self.model[:-1], self.sources[:-1]):
            if source != -1:
                x = outputs[source] if isinstance(source, int) else \
                    [x if s == -1 else outputs[s] for s in source]
            x = layer(x)
            outputs.append(x if len(outputs) in self.saved else None)
        return [x if s == -1 else outputs[s] for s in self.sources[-1]]

    def raw_outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """[B, C, H, W] letterboxed batch (H, W multiples of the stride) -> per level raw head
        outputs [B, anchors, H/s, W/s, 5 + nc]."""
        return self.model[-1](self._features(batch))

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        for image in images:
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise ValueError(
                    f"{self.arch}: expects [{self.in_channels},H,W] images "
                    f"({', '.join(self.modalities) or 'its input channels'}), got "
                    f"{list(image.shape)}; `detector convert --to ir|rgbt` adapts an RGB model")
        if self.training:
            if targets is None:
                raise ValueError("train mode needs targets")
            return self._losses(images, targets)
        return self._detect(images)

    def _losses(self, images, targets) -> dict[str, torch.Tensor]:
        size = self.image_size
        batch, rows = [], []
        for index, (image, target) in enumerate(zip(images, targets)):
            ratio = size / max(image.shape[-2:])
            boxed, gain, pad = letterbox(image, (size, size), ratio)
            batch.append(boxed)
            boxes = target["boxes"].to(image.device).float().reshape(-1, 4)
            boxes = boxes * gain.to(boxes) + torch.tensor(pad * 2, device=boxes.device)
            centre_size = xyxy_to_cxcywh(boxes) / size
            labels = target["labels"].to(image.device).float().reshape(-1, 1)
            rows.append(torch.cat((torch.full_like(labels, index), labels, centre_size), 1))
        raw = self.raw_outputs(torch.stack(batch))
        loss = AnchorLoss(self.model[-1].anchors, self.num_classes, size)
        return loss(raw, torch.cat(rows))

    def features(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The Detect head's inputs ([B,C_l,S/s,S/s] per stride s, finest first) for `images`
        letterboxed to the square training size S = image_size, as in training."""
        size = self.image_size
        batch = [letterbox(image, (size, size), size / max(image.shape[-2:]))[0] for image in images]
        return self._features(torch.stack(batch))

    def _eval_shape(self, height: int, width: int) -> tuple[tuple[int, int], float]:
        ratio = self.image_size / max(height, width)
        shape = [math.ceil(side * ratio / self.stride + self.eval_pad) * self.stride
                 for side in (height, width)]
        return (shape[0], shape[1]), ratio

    def _eval_batches(self, images) -> list[tuple[list[int], torch.Tensor, list]]:
        """[(indices, letterboxed batch, [(gain, pad, image)] per index)]: images of one
        letterboxed shape run together, so results never depend on batching."""
        groups: dict[tuple[int, int], list[int]] = {}
        prepared = []
        for index, image in enumerate(images):
            shape, ratio = self._eval_shape(*image.shape[-2:])
            prepared.append(letterbox(image, shape, ratio))
            groups.setdefault(shape, []).append(index)
        return [(indices, torch.stack([prepared[i][0] for i in indices]),
                 [(*prepared[i][1:], images[i]) for i in indices]) for indices in groups.values()]

    @torch.no_grad()
    def _detect(self, images) -> list[dict[str, torch.Tensor]]:
        results: list[dict | None] = [None] * len(images)
        for indices, batch, placements in self._eval_batches(images):
            detections = non_max_suppression(self.model[-1].decode(self.raw_outputs(batch)),
                                             self.conf_threshold, self.iou_threshold,
                                             self.max_detections, self.multi_label)
            for i, found, (gain, pad, image) in zip(indices, detections, placements):
                results[i] = unletterbox(found["boxes"], found["scores"], found["labels"],
                                         (gain, *pad), image)
        return results

    def export_plan(self, nms: bool = False):
        """The network on a letterboxed batch (dynamic batch and size) -> decoded predictions
        [B,N,5+K] (cx, cy, w, h pixels, objectness, class probabilities), or with `nms` the
        detections of GraphNMS; letterboxing and boxes back to input pixels stay in Python."""
        from detector.models.yolov5.export import export_plan

        return export_plan(self, nms)

    # --- contract ---

    def parts(self) -> dict[str, nn.Module]:
        """stem = layer 0; backbone.<i> = each stride-2 Conv with the layers up to the next one;
        neck = the yaml's head list but the Detect layer; head = Detect."""
        stages: list[list[nn.Module]] = []
        for index in range(1, self.backbone_length):
            args = self.yaml["backbone"][index][3]
            starts_stage = self.yaml["backbone"][index][2] == "Conv" and len(args) > 2 and args[2] == 2
            if starts_stage or not stages:
                stages.append([])
            stages[-1].append(self.model[index])
        parts = {"stem": self.model[0]}
        parts.update({f"backbone.{i}": nn.ModuleList(stage) for i, stage in enumerate(stages)})
        parts["neck"] = nn.ModuleList(self.model[self.backbone_length:-1])
        parts["head"] = self.model[-1]
        return parts

    def stem_conv(self) -> nn.Conv2d:
        return self.model[0].conv

    def set_stem_conv(self, conv: nn.Conv2d) -> None:
        self.model[0].conv = conv
        self.in_channels = conv.in_channels
        self.modalities = default_modalities(conv.in_channels)

    def remap_head(self, class_names: list[str], mapping: dict[int, int]) -> None:
        self.model[-1].remap_classes(len(class_names), dict(mapping))
        self.class_names = list(class_names)

    def build_args(self) -> dict:
        yaml = copy.deepcopy(self.yaml)
        yaml["nc"] = self.num_classes
        yaml["anchors"] = self.model[-1].anchors_px()
        return {"yaml": yaml, "image_size": self.image_size, "eval_pad": self.eval_pad,
                "conf_threshold": self.conf_threshold, "iou_threshold": self.iou_threshold,
                "max_detections": self.max_detections, "multi_label": self.multi_label}


# --- checkpoint import ---

def _class_names(model: Record, path: Path) -> list[str]:
    names = model.get("names")
    if isinstance(names, dict):
        names = [names[i] for i in sorted(names)]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: YOLOv5 model has no list of class names")
    return list(names)


def _check_layers(record: Record, module: nn.Module, path: Path, prefix: str = "") -> None:
    """Every torch layer in the pickled tree must have the same type at the same name in ours
    (catches activations or pooling the yaml does not describe)."""
    for name, child in record.children().items():
        ours = getattr(module, name, None)
        where = f"{prefix}{name}"
        if ours is None:
            raise CheckpointError(f"{path}: layer {where} ({child.qualname}) has no counterpart")
        is_leaf = not child.children()  # containers (Sequential vs ModuleList) may differ
        if is_leaf and child.module.startswith("torch.nn.modules.") and child.name != type(ours).__name__:
            raise CheckpointError(f"{path}: layer {where} is {child.name} in the checkpoint but "
                                  f"{type(ours).__name__} in the rebuilt network")
        if is_leaf and child.name == "BatchNorm2d" and child.get("eps") != ours.eps:
            raise CheckpointError(f"{path}: layer {where} has BatchNorm eps {child.get('eps')}; "
                                  f"YOLOv5 networks are rebuilt with {ours.eps}")
        _check_layers(child, ours, path, where + ".")


def detector_from_record(model: Record, path: Path, **options) -> YOLOv5Detector:
    """Rebuild a YOLOv5 `models.yolo.Model` record and load its weights (exact names/shapes)."""
    yaml = model.get("yaml")
    if not isinstance(yaml, dict) or "backbone" not in yaml or "head" not in yaml:
        raise CheckpointError(f"{path}: YOLOv5 model has no yaml with backbone and head")
    names = _class_names(model, path)
    in_channels = yaml.get("ch", 3)
    try:
        detector = YOLOv5Detector(names, yaml, in_channels=in_channels, **options)
    except (ConfigError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: cannot rebuild its YOLOv5 yaml ({e})") from e
    _check_layers(model, detector, path)
    # anchor_grid (YOLOv5 <= v5) is derived from anchors and strides; ours computes it.
    weights = {k: v for k, v in model.state_dict().items() if not k.endswith("anchor_grid")}
    expected = detector.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not match the rebuilt YOLOv5 network: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, "
                              f"wrong shape {wrong[:5]}")
    detector.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return detector.eval()


def import_checkpoint(path: str | Path, **options) -> YOLOv5Detector | None:
    """A Detector from a classic YOLOv5 .pt, or None when the file is not one.

    Uses the checkpoint's EMA when present (as YOLOv5's attempt_load does).
    """
    path = Path(path)
    try:
        checkpoint = load_pickled(path, YOLOV5_PREFIXES)
    except RefusedGlobal as e:
        if e.global_name.startswith("ultralytics."):
            return None  # an ultralytics checkpoint: the other importer's
        raise
    if not isinstance(checkpoint, dict):
        return None
    model = checkpoint.get("ema") or checkpoint.get("model")
    if not isinstance(model, Record) or model.module != "models.yolo":
        return None
    return detector_from_record(model, path, **options)


def _build(arch: str, class_names, weights=None, backbone_weights=None, in_channels=3,
           class_map=None, yaml=None, stem_init=None, **options) -> YOLOv5Detector:
    if backbone_weights is not None:
        raise ConfigError(f"{arch}: backbone_weights is not supported; give weights= (a YOLOv5 .pt)")
    if weights is None:
        if yaml is None:
            raise ConfigError(f"{arch} needs weights= (a YOLOv5 .pt) or yaml= (a model yaml dict)")
        detector = YOLOv5Detector(class_names, yaml, in_channels=in_channels, **options)
        detector.arch = arch
        return detector
    from detector.weights import resolve

    path = resolve(weights)  # a file as it is, else a registry name: local, cache, download
    detector = import_checkpoint(path, **options)
    if detector is None:
        raise CheckpointError(f"{path}: not a classic YOLOv5 checkpoint")
    detector.arch = arch
    if in_channels != detector.in_channels:
        from detector.models.surgery import adapt_stem

        adapt_stem(detector, in_channels, stem_init or "sum")
    if list(class_names) != detector.class_names:
        from detector.models.surgery import remap_classes

        remap_classes(detector, list(class_names), class_map)
    return detector


@register_model(ARCH, family="yolov5")
def yolov5_classic(class_names, weights=None, backbone_weights=None, in_channels=3,
                   class_map=None, yaml=None, stem_init=None, **options) -> YOLOv5Detector:
    """YOLOv5 from a checkpoint (`weights`: path or weights-registry name, e.g. yolov5n.pt) or
    from a model `yaml` dict (what build_args stores). Head surgery maps the checkpoint's classes
    to `class_names` (class_map 'auto', {new: old} or None); `in_channels` != 3 adapts the stem
    (stem_init, default 'sum'). options: image_size, eval_pad, conf_threshold, iou_threshold,
    max_detections, multi_label."""
    return _build(ARCH, class_names, weights, backbone_weights, in_channels, class_map, yaml,
                  stem_init, **options)


@register_model("yolov5n", family="yolov5")
def yolov5n(class_names, weights=None, backbone_weights=None, in_channels=3, class_map=None,
            yaml=None, stem_init=None, **options) -> YOLOv5Detector:
    """Classic YOLOv5n: from scratch (YOLOv5 v6's yolov5n layout) or from weights (yolov5n.pt)."""
    if weights is None and yaml is None:
        yaml = yolov5_yaml(0.33, 0.25, len(class_names))
    return _build("yolov5n", class_names, weights, backbone_weights, in_channels, class_map, yaml,
                  stem_init, **options)
