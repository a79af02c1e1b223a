"""The Detector contract (detector/models/detector.py), checked on every registered model.

As torchvision tests every detection model builder: each name in `list_models()` builds from
random init at a tiny size, takes one train step (named finite losses; gradients reach every
part it names) and one eval step (boxes [N,4] xyxy inside each input image, scores in 0..1,
int64 labels), rebuilds from its `build_args()`, on tiny CPU inputs with 1, 3 or 4 channels.
Family-specific behaviour (loss names, label shifts, checkpoint import) stays in the family's
own test file.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from detector.models import build_detector, list_models
from detector.models.detector import Detector, default_modalities
from detector.models.registry import get_model_entry
from detector.models.yolov5.layers import yolov5_yaml

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["cat", "dog", "bird"]
# Per family (the registry's family, not the name): the tiny size, fewer proposals for
# Faster R-CNN (the box head on torchvision's 1000 RoIs dominates CPU time), and a YOLO score
# threshold of 0 so that a fresh head's low scores still give boxes to check.
FAMILY_OPTIONS = {
    "rcnn": {"min_size": 64, "max_size": 96, "rpn_post_nms_top_n_train": 64,
             "rpn_post_nms_top_n_test": 32, "box_batch_size_per_image": 32},
    "yolo": {"image_size": 64, "conf_threshold": 0.0},
    "yolov5": {"image_size": 64, "conf_threshold": 0.0},
}
# Archs that cannot build from a name alone: what they are built from.
ARCH_OPTIONS = {
    "yolo_yaml": {"cfg": "yolov8n.yaml"},
    "yolov5_classic": {"yaml": yolov5_yaml(0.33, 0.0625, 3)},  # v6 layout at a tiny width
}


def _cases() -> list:
    """(arch, in_channels): each family's archs take 3, 1, 4, 3, ... channels in turn, so every
    channel count is covered without building each model three times."""
    cases = []
    for family in FAMILY_OPTIONS:
        for arch, channels in zip(list_models(family), itertools.cycle((3, 1, 4))):
            cases.append(pytest.param(arch, channels, id=f"{arch}-{channels}ch"))
    return cases


def _build(arch: str, in_channels: int, **extra) -> Detector:
    torch.manual_seed(0)
    options = {**FAMILY_OPTIONS[get_model_entry(arch).family],
               **copy.deepcopy(ARCH_OPTIONS.get(arch, {})), **extra}
    return build_detector(arch, CLASSES, weights=None, in_channels=in_channels, **options)


def _images(in_channels: int) -> list[torch.Tensor]:
    """Two images of different sizes, neither the model's own: boxes must come back in each
    image's pixels."""
    torch.manual_seed(1)
    return [torch.rand(in_channels, 60, 90), torch.rand(in_channels, 72, 56)]


def _targets() -> list[dict]:
    """[M,4] xyxy pixels of each image in _images, 0-based int64 labels; one image without boxes."""
    return [{"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [50.0, 10.0, 85.0, 30.0]]),
             "labels": torch.tensor([0, 2])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]


def test_every_family_has_options_here():
    families = {get_model_entry(arch).family for arch in list_models()}
    assert families == set(FAMILY_OPTIONS)
    assert set(ARCH_OPTIONS) <= set(list_models())


@pytest.mark.parametrize("arch,in_channels", _cases())
def test_detector_contract(arch, in_channels):
    detector = _build(arch, in_channels)
    assert isinstance(detector, Detector)
    assert detector.class_names == CLASSES and detector.num_classes == 3
    assert detector.in_channels == in_channels and detector.stem_conv().in_channels == in_channels
    assert detector.modalities == default_modalities(in_channels)
    _check_parts(detector)
    _check_train_step(detector, in_channels)
    _check_eval_step(detector, in_channels)
    _check_rebuild(detector, arch, in_channels)


def _check_parts(detector: Detector) -> None:
    """'stem', 'backbone.<i>'..., 'neck', 'head', holding every trainable parameter once."""
    parts = detector.parts()
    names = list(parts)
    backbone = names[1:-2]
    assert names[0] == "stem" and names[-2:] == ["neck", "head"]
    assert backbone and backbone == [f"backbone.{i}" for i in range(len(backbone))]
    held = [id(p) for part in parts.values() for p in part.parameters() if p.requires_grad]
    assert len(held) == len(set(held))
    assert set(held) == {id(p) for p in detector.parameters() if p.requires_grad}
    assert detector.stem_conv() in list(parts["stem"].modules())


def _check_train_step(detector: Detector, in_channels: int) -> None:
    detector.train()
    losses = detector(_images(in_channels), _targets())
    assert losses and all(isinstance(name, str) for name in losses)
    assert all(value.ndim == 0 and torch.isfinite(value) and value >= 0 for value in losses.values())
    total = sum(losses.values())
    assert total > 0
    total.backward()
    for name, part in detector.parts().items():
        grads = [p.grad for p in part.parameters() if p.requires_grad and p.grad is not None]
        assert grads, f"no gradient reaches {name}"
        assert all(torch.isfinite(g).all() for g in grads), f"non-finite gradient in {name}"
        assert any(g.abs().sum() > 0 for g in grads), f"only zero gradients in {name}"


def _check_eval_step(detector: Detector, in_channels: int) -> None:
    detector.eval()
    images = _images(in_channels)
    with torch.no_grad():
        outputs = detector(images)
    assert len(outputs) == len(images)
    assert sum(len(output["boxes"]) for output in outputs) > 0  # else nothing below is checked
    for image, output in zip(images, outputs):
        boxes, scores, labels = output["boxes"], output["scores"], output["labels"]
        count = len(boxes)
        assert set(output) == {"boxes", "scores", "labels"}
        assert boxes.shape == (count, 4) and scores.shape == (count,) and labels.shape == (count,)
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        if count == 0:
            continue
        height, width = image.shape[-2:]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert ((scores >= 0) & (scores <= 1)).all()
        assert labels.min() >= 0 and labels.max() < len(CLASSES)


def _check_rebuild(detector: Detector, arch: str, in_channels: int) -> None:
    """What a checkpoint stores (arch, classes, in_channels, build_args) rebuilds a network
    that takes this one's weights, name for name and shape for shape."""
    rebuilt = build_detector(arch, CLASSES, weights=None, in_channels=in_channels,
                             **detector.build_args())
    rebuilt.load_state_dict(detector.state_dict())
