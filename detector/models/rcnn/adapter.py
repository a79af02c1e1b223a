"""torchvision Faster R-CNN behind the Detector contract (family "rcnn").

Archs:
- COCO detectors, built exactly as torchvision builds them: fasterrcnn_resnet50_fpn,
  fasterrcnn_resnet50_fpn_v2, fasterrcnn_mobilenet_v3_large_fpn,
  fasterrcnn_mobilenet_v3_large_320_fpn (`weights`: a registry name or a torchvision file).
- Faster R-CNN on an ImageNet classification backbone (`backbone_weights`: a state_dict file
  with torchvision key names): fasterrcnn_mobilenet_v2, fasterrcnn_mobilenet_v3_large
  (FPN over the last block of the stride-8, -16 and -32 stages plus a pooled level, two anchor
  sizes per level covering 32..512 px), fasterrcnn_resnet18/34/50 (FPN over layer1..layer4,
  torchvision's resnet_fpn recipe).
`weights=None` and `backbone_weights=None` build from scratch.

Labels are 0-based outside this module. torchvision reserves label 0 for background, so labels
are shifted by one on the way in and out here and nowhere else. torchvision's COCO files have
91 outputs indexed by COCO category id (with unused ids); on load the head is cut to
background + the 80 classes in COCO_CLASSES order, so label i is COCO_CLASSES[i].

Options (family kwargs, all stored in build_args): min_size, max_size (the internal resize,
torchvision's defaults per arch), norm ('frozen': FrozenBatchNorm2d in the backbone body, the
torchvision choice for pretrained backbones and small batches; 'batch': BatchNorm2d; default
frozen when pretrained weights are loaded, batch from scratch; v2 always defaults to batch as in
torchvision), image_mean/image_std (per-channel input statistics), stem_init (how a pretrained
stem is adapted when in_channels != 3, see surgery.py), and for small objects or small CPUs:
anchor_scale (multiplies every anchor size; the anchor count per location, hence a pretrained RPN,
is kept), box_batch_size_per_image (RoIs sampled per image for the box head, torchvision 512:
the box head dominates the cost of a small image), rpn_post_nms_top_n_train/_test (proposals
kept), box_detections_per_img.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models
from torchvision.models import detection
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from detector.errors import ConfigError, suggestion
from detector.models.detector import Detector, default_modalities
from detector.models.rcnn.weights import load_backbone_weights, load_detector_weights
from detector.models.registry import register_model

NORMS = ("frozen", "batch")
# torchvision FasterRCNN keyword arguments passed through as they are.
TORCHVISION_OPTIONS = ("box_batch_size_per_image", "rpn_post_nms_top_n_train",
                       "rpn_post_nms_top_n_test", "box_detections_per_img")
OPTIONS = ("min_size", "max_size", "norm", "image_mean", "image_std", "stem_init", "anchor_scale",
           *TORCHVISION_OPTIONS)

# torchvision's COCO builders and the norm torchvision uses when their weights are loaded.
COCO_ARCHS = {
    "fasterrcnn_resnet50_fpn": (detection.fasterrcnn_resnet50_fpn, "frozen"),
    "fasterrcnn_resnet50_fpn_v2": (detection.fasterrcnn_resnet50_fpn_v2, "batch"),
    "fasterrcnn_mobilenet_v3_large_fpn": (detection.fasterrcnn_mobilenet_v3_large_fpn, "frozen"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (detection.fasterrcnn_mobilenet_v3_large_320_fpn,
                                              "frozen"),
}

# rcnn arch -> torchvision classification builder of its ImageNet backbone.
BACKBONE_ARCHS = {
    "fasterrcnn_mobilenet_v2": models.mobilenet_v2,
    "fasterrcnn_mobilenet_v3_large": models.mobilenet_v3_large,
    "fasterrcnn_resnet18": models.resnet18,
    "fasterrcnn_resnet34": models.resnet34,
    "fasterrcnn_resnet50": models.resnet50,
}


class RCNNDetector(Detector):
    """A torchvision `FasterRCNN` (in `.model`) keeping the Detector contract."""

    def __init__(self, arch: str, model: FasterRCNN, class_names: list[str], norm: str):
        super().__init__()
        self.arch = arch
        self.model = model
        self.class_names = list(class_names)
        self.norm = norm
        self.tuning: dict = {}  # anchor_scale and TORCHVISION_OPTIONS given at build time
        self.in_channels = self.stem_conv().in_channels
        self.modalities = default_modalities(self.in_channels)

    # --- contract -------------------------------------------------------------------------------

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        """images: list of [C,H,W] floats in 0..1. Train: targets with "boxes" [M,4] xyxy pixels
        and 0-based "labels" [M] -> dict of losses. Eval: list of {"boxes" [N,4] xyxy pixels of
        each input image, "scores" [N], "labels" [N] 0-based int64}."""
        images = list(images)
        for index, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise ValueError(f"{self.arch}: image {index} has shape {list(image.shape)}; "
                                 f"expected [{self.in_channels},H,W]")
        if self.training:
            if targets is None:
                raise ValueError(f"{self.arch}: training needs targets")
            inner = []
            for target in targets:
                boxes = target["boxes"].to(torch.float32).reshape(-1, 4)
                labels = target["labels"].to(torch.int64).reshape(-1)
                # Augmentation can squash a box to zero width; torchvision refuses those.
                keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                inner.append({"boxes": boxes[keep], "labels": labels[keep] + 1})
            return self.model(images, inner)
        detections = self.model(images)
        return [{"boxes": d["boxes"], "scores": d["scores"], "labels": d["labels"] - 1}
                for d in detections]

    def features(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The FPN levels the RPN sees ([B,256,H_l,W_l], finest first, the pooled level last)
        of `images` after the model's own resize, normalisation and padding."""
        batch, _ = self.model.transform(list(images))
        return list(self.model.backbone(batch.tensors).values())

    def export_plan(self, nms: bool = False):
        """torchvision's model after its resize, on one image (detector/models/rcnn/export.py)."""
        from detector.models.rcnn.export import export_plan

        return export_plan(self, nms)

    def _is_resnet(self) -> bool:
        return hasattr(self.model.backbone.body, "conv1")

    def parts(self) -> dict[str, nn.Module]:
        """stem (first conv + norm), backbone.<i> (resnet layer1..4; mobilenet blocks grouped
        by output stride), neck (FPN), head (RPN + RoI heads)."""
        body = self.model.backbone.body
        parts: dict[str, nn.Module] = {}
        if self._is_resnet():
            parts["stem"] = nn.ModuleList([body.conv1, body.bn1])
            stages = [body.layer1, body.layer2, body.layer3, body.layer4]
        else:
            blocks = list(body.children())
            parts["stem"] = blocks[0]
            stages = []
            for block in blocks[1:]:
                # A strided block (`_is_cn`) starts the next stage.
                if not stages or getattr(block, "_is_cn", False):
                    stages.append([])
                stages[-1].append(block)
            stages = [nn.ModuleList(stage) for stage in stages]
        for index, stage in enumerate(stages):
            parts[f"backbone.{index}"] = stage
        parts["neck"] = self.model.backbone.fpn
        parts["head"] = nn.ModuleList([self.model.rpn, self.model.roi_heads])
        return parts

    def build_args(self) -> dict:
        transform = self.model.transform
        min_size = [int(s) for s in transform.min_size]
        return {"min_size": min_size[0] if len(min_size) == 1 else min_size,
                "max_size": int(transform.max_size), "norm": self.norm,
                "image_mean": [float(m) for m in transform.image_mean],
                "image_std": [float(s) for s in transform.image_std], **self.tuning}

    # --- surgery hooks --------------------------------------------------------------------------

    def _stem(self) -> tuple[nn.Module, str, nn.Module]:
        """(module holding the stem conv, its attribute name, the norm layer after it)."""
        body = self.model.backbone.body
        if self._is_resnet():
            return body, "conv1", body.bn1
        first = next(iter(body.children()))
        return first, "0", first[1]

    def stem_conv(self) -> nn.Conv2d:
        holder, name, _ = self._stem()
        return getattr(holder, name)

    def set_stem_conv(self, conv: nn.Conv2d) -> None:
        """Install `conv`. These stems have no conv bias (a norm layer follows), so a bias on
        `conv` (stem adaptation adds one) is folded into the norm's running mean: the same
        output in eval mode, removed by the batch mean in train mode, and the state_dict keys
        stay those of a rebuilt model."""
        holder, name, norm = self._stem()
        if conv.bias is not None:
            with torch.no_grad():
                norm.running_mean -= conv.bias.detach().to(norm.running_mean)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                               conv.padding, conv.dilation, conv.groups, bias=False,
                               padding_mode=conv.padding_mode, device=conv.weight.device,
                               dtype=conv.weight.dtype)
            with torch.no_grad():
                folded.weight.copy_(conv.weight)
            folded.weight.requires_grad_(conv.weight.requires_grad)
            conv = folded
        setattr(holder, name, conv)
        self.in_channels = conv.in_channels

    def input_stats(self) -> tuple[list[float], list[float]]:
        transform = self.model.transform
        return [float(m) for m in transform.image_mean], [float(s) for s in transform.image_std]

    def set_input_stats(self, mean: list[float], std: list[float]) -> None:
        channels = self.stem_conv().in_channels
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(f"{self.arch}: image_mean/image_std need {channels} values "
                              f"(one per input channel), got {len(mean)} and {len(std)}")
        self.model.transform.image_mean = [float(m) for m in mean]
        self.model.transform.image_std = [float(s) for s in std]

    def remap_head(self, class_names: list[str], mapping: dict[int, int]) -> None:
        """New box predictor for `class_names`; new label i copies the classifier row and the
        4 box-regression rows of pretrained label mapping[i] (background is always kept)."""
        for new, old in mapping.items():
            if not (0 <= new < len(class_names) and 0 <= old < len(self.class_names)):
                raise ConfigError(f"{self.arch}: class mapping {new} -> {old} is out of range "
                                  f"({len(class_names)} new, {len(self.class_names)} pretrained)")
        rows = {0: 0, **{new + 1: old + 1 for new, old in mapping.items()}}
        self.rebuild_predictor(len(class_names) + 1, rows)
        self.class_names = list(class_names)

    def rebuild_predictor(self, num_rows: int, rows: dict[int, int]) -> None:
        """Replace the box predictor with one of `num_rows` classes (background included),
        copying old row rows[new] into new row `new`; other rows start fresh."""
        old = self.model.roi_heads.box_predictor
        weight = old.cls_score.weight
        new = FastRCNNPredictor(old.cls_score.in_features, num_rows).to(weight.device, weight.dtype)
        with torch.no_grad():
            # Small fresh rows (detectron2's init): a new class starts near zero logit rather
            # than with a random preference.
            nn.init.normal_(new.cls_score.weight, std=0.01)
            nn.init.normal_(new.bbox_pred.weight, std=0.001)
            nn.init.zeros_(new.cls_score.bias)
            nn.init.zeros_(new.bbox_pred.bias)
            for new_row, old_row in rows.items():
                new.cls_score.weight[new_row] = old.cls_score.weight[old_row]
                new.cls_score.bias[new_row] = old.cls_score.bias[old_row]
                box_new = slice(4 * new_row, 4 * new_row + 4)
                box_old = slice(4 * old_row, 4 * old_row + 4)
                new.bbox_pred.weight[box_new] = old.bbox_pred.weight[box_old]
                new.bbox_pred.bias[box_new] = old.bbox_pred.bias[box_old]
        self.model.roi_heads.box_predictor = new


# --- building -----------------------------------------------------------------------------------


def _freeze_batchnorm(module: nn.Module, eps: float | None = None) -> None:
    """Replace every BatchNorm2d under `module` by a FrozenBatchNorm2d with the same stats."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps if eps is None else eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child, eps)


def _check_options(arch: str, options: dict) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model.options: unknown option(s) {', '.join(unknown)} for {arch}; "
                          f"{suggestion(unknown[0], OPTIONS, what='valid options')}")
    if options.get("norm") is not None and options["norm"] not in NORMS:
        raise ConfigError(f"model.options.norm: {arch} takes one of {', '.join(NORMS)}, got "
                          f"{options['norm']!r}")


def _size_kwargs(options: dict) -> dict:
    kwargs = {}
    if options.get("min_size") is not None:
        min_size = options["min_size"]
        kwargs["min_size"] = tuple(min_size) if isinstance(min_size, (list, tuple)) else int(min_size)
    if options.get("max_size") is not None:
        kwargs["max_size"] = int(options["max_size"])
    for name in TORCHVISION_OPTIONS:
        if options.get(name) is not None:
            kwargs[name] = int(options[name])
    return kwargs


def _scale_anchors(model: FasterRCNN, scale: float) -> None:
    """Multiply every anchor size by `scale`, keeping the number of anchors per location."""
    if scale <= 0:
        raise ConfigError(f"anchor_scale must be > 0, got {scale}")
    generator = model.rpn.anchor_generator
    generator.sizes = tuple(tuple(float(size) * scale for size in level) for level in generator.sizes)
    generator.cell_anchors = [generator.generate_anchors(sizes, ratios) for sizes, ratios
                              in zip(generator.sizes, generator.aspect_ratios)]


def _mobilenet_fpn(features: nn.Sequential) -> tuple[BackboneWithFPN, AnchorGenerator,
                                                     MultiScaleRoIAlign]:
    """FPN over the last block of the stride-8, -16 and -32 stages of a mobilenet `features`."""
    starts = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
    ends = [start - 1 for start in starts[2:]] + [len(features) - 1]  # strides 8, 16, 32
    return_layers = {str(end): str(level) for level, end in enumerate(ends)}
    backbone = BackboneWithFPN(features, return_layers, [features[e].out_channels for e in ends], 256,
                               extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(sizes=((32, 64), (64, 128), (128, 256), (256, 512)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    return backbone, anchors, pool


def _backbone_model(arch: str, num_classes: int, size_kwargs: dict) -> FasterRCNN:
    classifier = BACKBONE_ARCHS[arch](weights=None)
    if isinstance(classifier, models.ResNet):
        base = classifier.inplanes // 8  # layer1's output channels
        backbone = BackboneWithFPN(
            classifier, {f"layer{i}": str(i - 1) for i in range(1, 5)},
            [base * 2 ** i for i in range(4)], 256, extra_blocks=LastLevelMaxPool())
        return FasterRCNN(backbone, num_classes, **size_kwargs)
    backbone, anchors, pool = _mobilenet_fpn(classifier.features)
    return FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors, box_roi_pool=pool,
                      **size_kwargs)


def _finish(detector: RCNNDetector, class_names: list[str], class_map, in_channels: int,
            options: dict, pretrained: bool) -> RCNNDetector:
    from detector.models.surgery import adapt_stem, remap_classes

    if list(detector.class_names) != list(class_names):
        remap_classes(detector, class_names, class_map)
    if in_channels != 3:
        # A pretrained stem is adapted with the chosen init; a fresh one is simply redrawn.
        init = (options.get("stem_init") or "sum") if pretrained else "random"
        adapt_stem(detector, in_channels, init)
    if options.get("image_mean") is not None or options.get("image_std") is not None:
        mean, std = detector.input_stats()
        detector.set_input_stats(options.get("image_mean") or mean, options.get("image_std") or std)
    detector.in_channels = in_channels
    detector.modalities = default_modalities(in_channels)
    return detector


def _build(arch: str, class_names: list[str], weights, backbone_weights, in_channels: int,
           class_map, options: dict) -> RCNNDetector:
    _check_options(arch, options)
    if not class_names:
        raise ConfigError(f"{arch}: needs at least one class name")
    pretrained = weights is not None or backbone_weights is not None
    size_kwargs = _size_kwargs(options)
    if arch in COCO_ARCHS:
        builder, pretrained_norm = COCO_ARCHS[arch]
        norm = options.get("norm") or (pretrained_norm if pretrained else "batch")
        model = builder(weights=None, weights_backbone=None, num_classes=len(class_names) + 1,
                        **size_kwargs)
        # torchvision trains its COCO mobilenets with FrozenBatchNorm2d's default eps.
        eps = 1e-5 if "mobilenet" in arch else None
    else:
        norm = options.get("norm") or ("frozen" if pretrained else "batch")
        model = _backbone_model(arch, len(class_names) + 1, size_kwargs)
        eps = None
    if norm == "frozen":
        _freeze_batchnorm(model.backbone.body, eps)
    detector = RCNNDetector(arch, model, class_names, norm)
    detector.tuning = {name: options[name] for name in ("anchor_scale", *TORCHVISION_OPTIONS)
                       if options.get(name) is not None}
    if options.get("anchor_scale") is not None:
        _scale_anchors(model, float(options["anchor_scale"]))
    if backbone_weights is not None:
        load_backbone_weights(detector, backbone_weights)
    if weights is not None:
        load_detector_weights(detector, weights)
    return _finish(detector, class_names, class_map, in_channels, options, pretrained)


def _register(arch: str) -> None:
    def build(class_names, weights=None, backbone_weights=None, in_channels=3, class_map=None,
              **options):
        return _build(arch, list(class_names), weights, backbone_weights, int(in_channels),
                      class_map, options)

    build.__name__ = arch
    build.__doc__ = f"Faster R-CNN `{arch}` as an RCNNDetector (see detector.models.rcnn.adapter)."
    register_model(arch, family="rcnn")(build)


for _arch in (*COCO_ARCHS, *BACKBONE_ARCHS):
    _register(_arch)


__all__ = ["BACKBONE_ARCHS", "COCO_ARCHS", "RCNNDetector"]
