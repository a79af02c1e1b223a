"""Ultralytics detection models (YOLOv8, YOLO11, YOLOv5u, YOLOv10, YOLO26...) behind the Detector
contract.

The network is ultralytics' own `DetectionModel`, built from its model yaml; training uses its
detection loss (`v8DetectionLoss`, or `E2ELoss` for the NMS-free heads of YOLOv10 / YOLO26) and
evaluation its decoded outputs followed by NMS. What this file adds is the contract around it:

- input: a list of [C,H,W] float 0..1 images, channels in RGB order (what ultralytics feeds its
  models: it converts OpenCV's BGR to RGB and divides by 255; there is no mean/std
  normalisation, so `input_stats()` is None);
- eval: each image is letterboxed (long side to `image_size`, padded with grey 114 to a multiple
  of the largest stride, centred, as ultralytics' LetterBox) and predicted boxes are mapped back to
  the input image's pixels;
- train: images come at training size from the dataset; they are padded (right/bottom, so boxes
  stay put) to a common size that the strides divide, and targets become ultralytics' batch dict
  (detector/models/ultralytics/loss.py, which also says how the loss is scaled). Ignore regions play
  no part in training (ultralytics' loss has no notion of them); evaluation counts them as crowd.

Parts (for freezing): `stem` = layer 0, `backbone.<i>` = layer i+1 up to the backbone's last layer
(SPPF, C2PSA or PSA), `neck` = the layers between the backbone and the head, `head` = Detect.

Checkpoints written by ultralytics (`yolov8n.pt`, a user's `best.pt`) are pickles of ultralytics
classes; they are read by `detector.models.safe_unpickle` (nothing from the file runs) and the
network is rebuilt from the checkpoint's own yaml (network.py); see `read_ultralytics_checkpoint`.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from detector.errors import CheckpointError, ConfigError
from detector.models.detector import Detector, default_modalities
from detector.models.letterbox import letterbox_batch, nms, pad_batch, unletterbox
from detector.models.registry import register_model
from detector.models.ultralytics.loss import detection_losses
from detector.models.ultralytics.network import (
    ARCH_YAMLS, architecture, build_network, load_model_yaml,
)

ULTRALYTICS_PREFIXES = ("ultralytics.",)


class YOLODetector(Detector):
    """An ultralytics DetectionModel keeping the Detector contract (see the module docstring).

    `image_size`: the long side images are letterboxed to in eval mode. `conf_threshold`,
    `iou_threshold`, `max_detections`: the NMS of eval mode (defaults as ultralytics' val).
    `network_classes` (read from the network as built): the class count its layers were sized
    for; Detect's class branch is max(channels, min(nc, 100)) wide and a remapped head keeps the
    pretrained width, so a rebuild needs that count (build_args carries it when it differs).
    """

    def __init__(self, model: nn.Module, class_names: list[str], arch: str, cfg: dict | None = None,
                 image_size: int = 640, conf_threshold: float = 0.001, iou_threshold: float = 0.7,
                 max_detections: int = 300):
        super().__init__()
        self.model = model
        self.arch = arch
        self.cfg = cfg  # kept for build_args of archs built from a yaml
        self.class_names = list(class_names)
        self.in_channels = self.stem_conv().in_channels
        self.modalities = default_modalities(self.in_channels)
        self.image_size = int(image_size)
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.network_classes = int(model.model[-1].nc)
        self.model.names = dict(enumerate(self.class_names))
        self._criterion, self._criterion_device = None, None
        from ultralytics.cfg import get_cfg

        self.model.args = get_cfg()  # the loss gains (box 7.5, cls 0.5, dfl 1.5) live in there

    @property
    def stride(self) -> int:
        return int(self.model.stride.max())

    def _backbone_length(self) -> int:
        return len(self.model.yaml["backbone"])

    def parts(self) -> dict[str, nn.Module]:
        layers = self.model.model
        end = self._backbone_length()
        parts = {"stem": layers[0]}
        for index in range(1, end):
            parts[f"backbone.{index - 1}"] = layers[index]
        parts["neck"] = layers[end:-1]
        parts["head"] = layers[-1]
        return parts

    def build_args(self) -> dict:
        args = {"image_size": self.image_size, "conf_threshold": self.conf_threshold,
                "iou_threshold": self.iou_threshold, "max_detections": self.max_detections}
        if self.arch == "yolo_yaml":
            args["cfg"] = copy.deepcopy(self.cfg)
        if self.network_classes != self.num_classes:
            args["network_classes"] = self.network_classes
        return args

    # --- surgery hooks ---

    def stem_conv(self) -> nn.Conv2d:
        return self.model.model[0].conv

    def set_stem_conv(self, conv: nn.Conv2d) -> None:
        self.model.model[0].conv = conv
        self.in_channels = conv.in_channels
        self.modalities = default_modalities(conv.in_channels)
        self.model.yaml["channels"] = conv.in_channels
        if self.cfg is not None:
            self.cfg["channels"] = conv.in_channels

    def eval_long_side(self) -> int | None:
        return int(self.image_size)  # letterbox_batch: long side to image_size, then padding

    def for_inference(self) -> "YOLODetector":
        """A copy with ultralytics' own Conv + BatchNorm fusion (as its validator runs)."""
        fused = copy.deepcopy(self).eval()
        fused.model.fuse(verbose=False)
        return fused

    def remap_head(self, class_names: list[str], mapping: dict[int, int]) -> None:
        """New class convolutions (cv3[i][-1], and one2one_cv3 for NMS-free heads) for
        `class_names`; rows of mapped classes are copied, the others get a fresh init with
        ultralytics' prior bias. The box branch (cv2) and DFL are kept as they are."""
        head = self.model.model[-1]
        count = len(class_names)
        for branch_name in ("cv3", "one2one_cv3"):
            branch = getattr(head, branch_name, None)
            if branch is None:
                continue
            for level, sequence in enumerate(branch):
                old = sequence[-1]
                new = nn.Conv2d(old.in_channels, count, 1).to(old.weight.device, old.weight.dtype)
                with torch.no_grad():
                    # the prior ultralytics' bias_init gives: ~5 objects per 640 image
                    new.bias.fill_(math.log(5 / count / (640 / float(head.stride[level])) ** 2))
                    for new_label, old_label in mapping.items():
                        new.weight[new_label] = old.weight[old_label]
                        new.bias[new_label] = old.bias[old_label]
                sequence[-1] = new
        head.nc = count
        head.no = count + head.reg_max * 4
        self.model.yaml["nc"] = count
        if self.cfg is not None:
            self.cfg["nc"] = count
        self.class_names = list(class_names)
        self.model.names = dict(enumerate(self.class_names))
        self._criterion = None

    # --- forward ---

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("train mode needs targets")
            return self._losses(images, targets)
        return self._predict(images)

    def features(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The Detect head's inputs ([B,C_l,H/s,W/s] per stride s, finest first) for `images`
        padded as in training (ultralytics' layer walk, stopped before the head)."""
        x, outputs = pad_batch(images, self.stride), []
        for layer in self.model.model[:-1]:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else \
                    [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.model.save else None)
        return [x if j == -1 else outputs[j] for j in self.model.model[-1].f]

    def _criterion_for(self, device: torch.device):
        """ultralytics' loss object; it caches the device and nc, so it is remade when they change."""
        if self._criterion is None or self._criterion_device != device:
            self._criterion = self.model.init_criterion()
            self._criterion_device = device
        return self._criterion

    def _losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        batch = pad_batch(images, self.stride)
        criterion = self._criterion_for(batch.device)
        return detection_losses(self.model, criterion, batch, targets)

    @torch.no_grad()
    def _predict(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        batch, placements = letterbox_batch(images, self.image_size, self.stride)
        output = self.model(batch)
        output = output[0] if isinstance(output, (tuple, list)) else output
        return [unletterbox(*self._select(output[index]), placement, images[index])
                for index, placement in enumerate(placements)]

    def _select(self, prediction: torch.Tensor):
        """One image's decoded output -> (boxes [N,4] xyxy of the batch, scores, labels)."""
        if self.model.model[-1].end2end:  # NMS-free head: [K,6] xyxy, score, class already
            rows = prediction[prediction[:, 4] > self.conf_threshold][: self.max_detections]
            return rows[:, :4], rows[:, 4], rows[:, 5].long()
        return nms(prediction, self.conf_threshold, self.iou_threshold, self.max_detections)

    def export_plan(self, nms: bool = False):
        """The network on a letterboxed batch (dynamic batch and size) -> its decoded output
        [B,4+K,A] (cxcywh pixels of the batch, class probabilities; NMS-free heads: [B,D,6]
        xyxy, score, class), or with `nms` the detections of GraphNMS (NMS-free heads have none
        to add). Letterboxing and mapping boxes back stay in Python (see detector/export)."""
        from detector.models.ultralytics.export import export_plan

        return export_plan(self, nms)


# --- ultralytics checkpoints ---


def read_ultralytics_checkpoint(path: str | Path) -> dict | None:
    """{'cfg': model yaml dict, 'state_dict', 'class_names', 'in_channels'} from an ultralytics
    .pt (its EMA weights when it has them, as ultralytics loads them), or None when the file is a
    readable torch pickle without an ultralytics model in it.

    Read with the restricted unpickler: ultralytics classes become inert records and any other
    global is refused (CheckpointError naming the file); nothing in the file runs.
    """
    from detector.models.safe_unpickle import Record, load_pickled

    path = Path(path)
    content = load_pickled(path, ULTRALYTICS_PREFIXES)
    if not isinstance(content, dict):
        return None
    record = content.get("ema") or content.get("model")
    if not isinstance(record, Record) or not record.module.startswith(ULTRALYTICS_PREFIXES):
        return None
    if record.name != "DetectionModel":
        raise CheckpointError(f"{path}: holds an ultralytics {record.name}; only detection models "
                              "(DetectionModel) are supported")
    cfg = record.get("yaml")
    if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
        raise CheckpointError(f"{path}: its DetectionModel has no model yaml (backbone, head) to "
                              "rebuild the network from")
    state_dict = record.state_dict()
    if not state_dict:
        raise CheckpointError(f"{path}: its DetectionModel holds no weights")
    names = record.get("names")
    count = int(cfg.get("nc") or 0)
    if isinstance(names, dict):
        names = [str(names[i]) for i in sorted(names)]
    elif isinstance(names, (list, tuple)):
        names = [str(name) for name in names]
    else:
        names = [str(i) for i in range(count)]
    first_conv = next(value for key, value in state_dict.items() if key.endswith("weight"))
    return {"cfg": copy.deepcopy(cfg), "state_dict": state_dict, "class_names": names,
            "in_channels": int(first_conv.shape[1])}


def _arch_of(cfg: dict) -> str:
    """The registered arch whose yaml builds the same layers as `cfg`, else 'yolo_yaml'."""
    stem = Path(str(cfg.get("yaml_file") or "")).stem
    if stem in ARCH_YAMLS and architecture(load_model_yaml(ARCH_YAMLS[stem])) == architecture(cfg):
        return stem
    return "yolo_yaml"


def detector_from_ultralytics(path: str | Path, arch: str | None = None, loaded: dict | None = None,
                              **options) -> YOLODetector:
    """A YOLODetector with the network and weights of the ultralytics checkpoint at `path` (or
    its `loaded` contents), in the checkpoint's own classes and input channels. `arch`: the arch
    the caller asked for; the checkpoint's layers must be that arch's (ConfigError otherwise)."""
    loaded = loaded or read_ultralytics_checkpoint(path)
    if loaded is None:
        raise CheckpointError(f"{path}: not an ultralytics checkpoint (no ultralytics model in it)")
    cfg = loaded["cfg"]
    found = _arch_of(cfg)
    if arch not in (None, "yolo_yaml") and found != arch:
        raise ConfigError(f"{path}: holds a {found if found != 'yolo_yaml' else 'custom'} network "
                          f"({cfg.get('yaml_file')}), not {arch}")
    model = build_network(cfg, loaded["in_channels"], len(loaded["class_names"]))
    try:
        model.load_state_dict(loaded["state_dict"])
    except RuntimeError as e:
        first_line = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit the network its yaml describes "
                              f"({first_line})") from e
    return YOLODetector(model, loaded["class_names"], found, cfg=cfg if found == "yolo_yaml" else None,
                        **options)


def import_checkpoint(path: str | Path) -> YOLODetector | None:
    """For detector.models.loading's FOREIGN_IMPORTERS: the detector in an ultralytics .pt, or
    None when the file holds no ultralytics model. A file naming other globals (a classic YOLOv5
    checkpoint, a hostile pickle) raises CheckpointError without running anything."""
    loaded = read_ultralytics_checkpoint(path)
    return None if loaded is None else detector_from_ultralytics(path, loaded=loaded).eval()


# --- builders ---


def _build(arch: str, cfg: dict, class_names: list[str], weights=None, backbone_weights=None,
           in_channels: int = 3, class_map=None, stem_init: str | None = None,
           **options) -> YOLODetector:
    if backbone_weights is not None:
        raise ConfigError(f"{arch}: ultralytics models take `weights` (a detector checkpoint such "
                          "as yolov8n.pt), not backbone_weights")
    network_classes = options.pop("network_classes", None)  # from build_args: see YOLODetector
    if weights is None:
        network_classes = network_classes or len(class_names)
        model = build_network(cfg, in_channels, network_classes)
        detector = YOLODetector(model, class_names, arch, cfg=cfg if arch == "yolo_yaml" else None,
                                **options)
        if network_classes != len(class_names):  # a remapped head: pretrained widths, new rows
            detector.remap_head(class_names, {})
        return detector
    from detector.weights import resolve

    path = resolve(weights)  # a file as it is, else a registry name: local, cache, download
    detector = detector_from_ultralytics(path, arch=arch, **options)
    if arch == "yolo_yaml" and cfg and architecture(cfg) != architecture(detector.model.yaml):
        raise ConfigError(f"{path}: its network is not the one cfg {cfg.get('yaml_file', '')} "
                          "describes; give only weights to use the checkpoint's own yaml")
    if detector.in_channels != in_channels:
        from detector.models.surgery import adapt_stem

        adapt_stem(detector, in_channels, stem_init or "sum")
    if list(class_names) != detector.class_names:
        from detector.models.surgery import remap_classes

        remap_classes(detector, list(class_names), class_map)
    return detector


def _register(arch: str, yaml_name: str) -> None:
    def builder(class_names, weights=None, backbone_weights=None, in_channels=3, class_map=None,
                **options) -> YOLODetector:
        return _build(arch, load_model_yaml(yaml_name), class_names, weights, backbone_weights,
                      in_channels, class_map, **options)

    builder.__doc__ = f"ultralytics {arch} ({yaml_name}); weights: e.g. {arch}.pt."
    register_model(arch, family="yolo")(builder)


for _arch, _yaml in ARCH_YAMLS.items():
    _register(_arch, _yaml)


@register_model("yolo_yaml", family="yolo")
def yolo_yaml(class_names, weights=None, backbone_weights=None, in_channels=3, class_map=None,
              cfg: str | Path | dict | None = None, **options) -> YOLODetector:
    """Any ultralytics detection network from a model yaml (`cfg`: a path, an ultralytics name
    such as yolov8n-p2.yaml, or a dict); with `weights` and no cfg, the checkpoint's own yaml."""
    if cfg is None and weights is None:
        raise ConfigError("yolo_yaml: give cfg (a model yaml) or weights (an ultralytics .pt)")
    if cfg is None:
        return _build("yolo_yaml", {}, class_names, weights, backbone_weights, in_channels,
                      class_map, **options)
    return _build("yolo_yaml", load_model_yaml(cfg), class_names, weights, backbone_weights,
                  in_channels, class_map, **options)
