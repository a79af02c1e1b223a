"""Faster R-CNN adapter: what is the family's own (torchvision's losses and background label,
weights, options, stem); the Detector contract itself is tests/test_detector_contract.py."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models import detection

from detector.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from detector.errors import ConfigError, WeightsError
from detector.models import build_detector, list_models
from detector.models.rcnn.adapter import RCNNDetector
from detector.models.surgery import adapt_stem

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)

CLASSES = ["cat", "dog", "bird"]
SMALL = {"min_size": 64, "max_size": 96}
RCNN_ARCHS = list_models("rcnn")


def small(detector: RCNNDetector) -> RCNNDetector:
    """Fewer proposals and RoI samples than torchvision's defaults (2000/1000 proposals, 512
    RoIs per image): the box head's 12544x1024 layer on 1000 RoIs dominates CPU time."""
    rpn, roi_heads = detector.model.rpn, detector.model.roi_heads
    rpn._pre_nms_top_n = {"training": 200, "testing": 100}
    rpn._post_nms_top_n = {"training": 64, "testing": 32}
    rpn.fg_bg_sampler.batch_size_per_image = 64
    roi_heads.fg_bg_sampler.batch_size_per_image = 32
    return detector


def _images_and_targets():
    torch.manual_seed(0)
    images = [torch.rand(3, 60, 90), torch.rand(3, 72, 64)]
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [50.0, 10.0, 85.0, 30.0]]),
         "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    return images, targets


def test_all_archs_registered():
    assert set(RCNN_ARCHS) == {
        "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
        "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
        "fasterrcnn_mobilenet_v2", "fasterrcnn_mobilenet_v3_large",
        "fasterrcnn_resnet18", "fasterrcnn_resnet34", "fasterrcnn_resnet50"}


def test_losses_are_torchvision_s_and_eval_labels_drop_its_background():
    """The generic train/eval contract is tests/test_detector_contract.py; here what is
    Faster R-CNN's own: torchvision's four losses, and eval labels = torchvision's - 1."""
    detector = small(build_detector("fasterrcnn_mobilenet_v2", CLASSES, weights=None, **SMALL))
    images, targets = _images_and_targets()
    losses = detector.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    detector.eval()
    detector.model.roi_heads.score_thresh = 0.0  # random weights: keep every detection
    with torch.no_grad():
        outputs = detector(images)
        raw = detector.model(images)  # torchvision's own labels: background is 0
    assert sum(len(out["labels"]) for out in outputs) > 0
    for out, inner in zip(outputs, raw):
        assert torch.equal(out["labels"], inner["labels"] - 1)


@pytest.mark.parametrize("arch", RCNN_ARCHS)
def test_every_backbone_has_four_levels_or_more(arch):
    names = list(build_detector(arch, CLASSES, **SMALL).parts())
    assert len([name for name in names if name.startswith("backbone.")]) >= 4


def test_labels_shift_inside_the_adapter_only():
    """A 0-based target label k trains torchvision's class k + 1 (background stays 0)."""
    detector = small(build_detector("fasterrcnn_mobilenet_v2", CLASSES, **SMALL)).train()
    seen = []
    original = detector.model.forward

    def spy(images, targets=None):
        seen.extend(t["labels"].tolist() for t in targets)
        return original(images, targets)

    detector.model.forward = spy
    images, targets = _images_and_targets()
    detector(images, targets)
    assert seen == [[1, 3], []]


def test_degenerate_boxes_are_dropped_not_fatal():
    detector = small(build_detector("fasterrcnn_mobilenet_v2", CLASSES, **SMALL)).train()
    images, targets = _images_and_targets()
    targets[0]["boxes"][1, 2] = targets[0]["boxes"][1, 0]  # zero width after augmentation
    losses = detector(images, targets)
    assert torch.isfinite(sum(losses.values()))


def test_wrong_channel_count_is_refused():
    detector = build_detector("fasterrcnn_mobilenet_v2", CLASSES, **SMALL).eval()
    with pytest.raises(ValueError, match=r"expected \[3,H,W\]"):
        detector([torch.rand(1, 32, 32)])


def test_unknown_option_and_norm_are_refused():
    with pytest.raises(ConfigError, match="model.options: unknown option.*did you mean .min_size."):
        build_detector("fasterrcnn_resnet18", CLASSES, min_sise=64)
    with pytest.raises(ConfigError, match="model.options.norm: .* takes one of"):
        build_detector("fasterrcnn_resnet18", CLASSES, norm="group")


def test_build_args_rebuild_an_adapted_model_exactly():
    """A checkpoint stores state_dict + build_args; rebuilding from them (weights=None) must give
    the same network, including a stem adapted to 4 channels and its input statistics."""
    torch.manual_seed(1)
    detector = build_detector("fasterrcnn_resnet18", CLASSES, norm="frozen", **SMALL)
    adapt_stem(detector, 4, "mean")
    args = detector.build_args()
    assert args["norm"] == "frozen" and len(args["image_mean"]) == 4 and args["min_size"] == 64
    rebuilt = build_detector("fasterrcnn_resnet18", CLASSES, weights=None, in_channels=4, **args)
    small(detector), small(rebuilt)
    rebuilt.load_state_dict(detector.state_dict())  # strict: same keys and shapes
    assert rebuilt.input_stats() == detector.input_stats()
    image = [torch.rand(4, 64, 80)]
    detector.eval(), rebuilt.eval()
    with torch.no_grad():
        a, b = detector(image)[0], rebuilt(image)[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_from_scratch_extra_channels():
    detector = small(build_detector("fasterrcnn_mobilenet_v2", ["x"], in_channels=1, **SMALL))
    assert detector.in_channels == 1 and detector.stem_conv().in_channels == 1
    assert len(detector.input_stats()[0]) == 1
    detector.eval()
    with torch.no_grad():
        out = detector([torch.rand(1, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels"}


def _fake_torchvision_coco_file(tmp_path):
    """A state_dict laid out like torchvision's COCO file (91 outputs by category id)."""
    torch.manual_seed(2)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "fasterrcnn_mobilenet_v3_large_320_fpn-00000000.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_coco_weights_head_is_cut_to_the_80_classes(tmp_path):
    model, path = _fake_torchvision_coco_file(tmp_path)
    detector = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", list(COCO_CLASSES),
                              weights=str(path), **SMALL)
    assert detector.class_names == list(COCO_CLASSES)
    assert detector.norm == "frozen"  # torchvision's choice for its pretrained mobilenets
    old = model.roi_heads.box_predictor
    new = detector.model.roi_heads.box_predictor
    assert new.cls_score.out_features == 81
    for label in (0, 11, 79):  # 'person', 'stop sign' (id 13), 'toothbrush' (id 90)
        category = COCO_CATEGORY_IDS[label]
        assert torch.equal(new.cls_score.weight[label + 1], old.cls_score.weight[category])
        assert torch.equal(new.bbox_pred.weight[4 * label + 4: 4 * label + 8],
                          old.bbox_pred.weight[4 * category: 4 * category + 4])
    assert torch.equal(new.cls_score.weight[0], old.cls_score.weight[0])
    # Everything but the head is torchvision's network, weight for weight.
    body = detector.model.backbone.state_dict()
    for name, value in model.backbone.state_dict().items():
        if not name.endswith("num_batches_tracked"):  # FrozenBatchNorm2d keeps no counter
            assert torch.equal(body[name], value), name


def test_coco_weights_remapped_with_class_map(tmp_path):
    model, path = _fake_torchvision_coco_file(tmp_path)
    detector = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", ["Person", "van", "kite"],
                              weights=str(path), class_map={"van": "truck"}, **SMALL)
    old = model.roi_heads.box_predictor.cls_score.weight
    new = detector.model.roi_heads.box_predictor.cls_score.weight
    assert new.shape[0] == 4
    assert torch.equal(new[1], old[1])  # person: category id 1
    assert torch.equal(new[2], old[8])  # van <- truck: category id 8
    assert torch.equal(new[3], old[38])  # kite: category id 38


def test_weights_that_do_not_fit_are_refused(tmp_path):
    _, path = _fake_torchvision_coco_file(tmp_path)
    with pytest.raises(WeightsError, match="does not fit"):
        build_detector("fasterrcnn_resnet50_fpn", list(COCO_CLASSES), weights=str(path), **SMALL)
    not_a_detector = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, not_a_detector)
    with pytest.raises(WeightsError, match="not a torchvision Faster R-CNN"):
        build_detector("fasterrcnn_resnet18", CLASSES, weights=str(not_a_detector), **SMALL)


def test_backbone_weights_with_torchvision_key_names(tmp_path):
    """A classification state_dict (resnet keys with fc.*) loads into the detector's body."""
    import torchvision

    torch.manual_seed(3)
    classifier = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    detector = build_detector("fasterrcnn_resnet18", CLASSES, backbone_weights=str(path), **SMALL)
    assert detector.norm == "frozen"
    assert torch.equal(detector.model.backbone.body.layer3[1].conv2.weight,
                       classifier.layer3[1].conv2.weight)
    assert torch.equal(detector.model.backbone.body.bn1.running_mean, classifier.bn1.running_mean)
    wrong = copy.deepcopy(classifier.state_dict())
    wrong.pop("layer4.1.conv2.weight")
    torch.save(wrong, path)
    with pytest.raises(WeightsError, match="missing keys"):
        build_detector("fasterrcnn_resnet18", CLASSES, backbone_weights=str(path), **SMALL)


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v2", "fasterrcnn_resnet18"])
def test_anchor_scale_and_roi_sampling_options_reach_torchvision_and_round_trip(arch):
    plain = build_detector(arch, CLASSES, **SMALL)
    tuned = build_detector(arch, CLASSES, anchor_scale=0.5, box_batch_size_per_image=64,
                           rpn_post_nms_top_n_train=200, **SMALL)
    half = [[size / 2 for size in level] for level in plain.model.rpn.anchor_generator.sizes]
    assert [list(level) for level in tuned.model.rpn.anchor_generator.sizes] == half
    # the anchors themselves (not only the recorded sizes) are halved; counts per location kept
    for a, b in zip(plain.model.rpn.anchor_generator.cell_anchors,
                    tuned.model.rpn.anchor_generator.cell_anchors):
        assert a.shape == b.shape and torch.allclose(b, a / 2, atol=1)  # torchvision rounds
    assert tuned.model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    assert tuned.model.rpn._post_nms_top_n["training"] == 200
    args = tuned.build_args()
    assert args["anchor_scale"] == 0.5 and args["box_batch_size_per_image"] == 64
    rebuilt = build_detector(arch, CLASSES, **args)
    assert rebuilt.model.rpn.anchor_generator.sizes == tuned.model.rpn.anchor_generator.sizes
    with pytest.raises(ConfigError, match="anchor_scale must be > 0"):
        build_detector(arch, CLASSES, anchor_scale=0, **SMALL)
