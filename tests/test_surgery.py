"""Model surgery: class matching, head remap (pretrained rows copied), stem adaptation inits."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.ops import box_iou

from detector.errors import ConfigError
from detector.models import build_detector
from detector.models.surgery import (adapt_stem, expand_conv_weight, extend_input_stats,
                                     match_classes, remap_classes)

PRETRAINED = ["person", "car", "truck", "dog"]
SMALL = {"min_size": 64, "max_size": 96}


def _pretrained_like(arch="fasterrcnn_mobilenet_v2", classes=PRETRAINED, **options):
    """A detector with random weights standing in for a pretrained one, BatchNorm statistics
    moved off their defaults so that folds into them are exercised."""
    torch.manual_seed(0)
    detector = build_detector(arch, list(classes), **{**SMALL, **options})
    with torch.no_grad():
        for module in detector.modules():
            if getattr(module, "running_mean", None) is not None:
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
    detector.model.rpn._post_nms_top_n = {"training": 64, "testing": 64}
    return detector.eval()


# --- class matching -----------------------------------------------------------------------------


def test_match_classes_by_name_case_insensitive():
    assert match_classes(["Car", "bicycle", "PERSON"], PRETRAINED) == {0: 1, 2: 0}
    assert match_classes(["x", "y"], PRETRAINED) == {}


def test_match_classes_user_map_adds_and_overrides():
    mapping = match_classes(["Person", "OtherVehicle", "Car"], PRETRAINED,
                            {"OtherVehicle": "truck", "car": "TRUCK"})
    assert mapping == {0: 0, 1: 2, 2: 2}


def test_match_classes_user_map_errors_name_the_valid_ones():
    with pytest.raises(ConfigError, match="'plane' is not a pretrained class; valid: person, car"):
        match_classes(["Person", "Vehicle"], PRETRAINED, {"Vehicle": "plane"})
    with pytest.raises(ConfigError, match="'Boat' is not one of the dataset's classes; valid: "
                                          "Person, Vehicle"):
        match_classes(["Person", "Vehicle"], PRETRAINED, {"Boat": "car"})


# --- head remap ---------------------------------------------------------------------------------


def test_remap_copies_pretrained_rows_so_mapped_classes_score_the_same():
    detector = _pretrained_like()
    old = copy.deepcopy(detector.model.roi_heads.box_predictor)
    report = remap_classes(detector, ["Car", "bicycle", "PERSON"], "auto", verbose=False)
    assert report.mapped == {"Car": "car", "PERSON": "person"} and report.fresh == ["bicycle"]
    assert detector.class_names == ["Car", "bicycle", "PERSON"]
    new = detector.model.roi_heads.box_predictor
    features = torch.randn(50, old.cls_score.in_features)  # what the box head feeds the predictor
    with torch.no_grad():
        old_logits, old_boxes = old(features)
        new_logits, new_boxes = new(features)
    # internal rows: 0 background, then 1 + label. Car <- car (2), PERSON <- person (1)
    for new_row, old_row in [(0, 0), (1, 2), (3, 1)]:
        assert torch.equal(new_logits[:, new_row], old_logits[:, old_row])
        assert torch.equal(new_boxes[:, 4 * new_row:4 * new_row + 4],
                           old_boxes[:, 4 * old_row:4 * old_row + 4])
    # the fresh class starts near zero logit, not copied from anything
    assert new_logits[:, 2].abs().max() < old_logits.abs().max()


def test_remap_to_a_permutation_detects_the_same_boxes_with_renamed_labels():
    detector = _pretrained_like()
    detector.model.roi_heads.score_thresh = 0.0
    image = [torch.rand(3, 64, 80)]
    with torch.no_grad():
        before = detector(image)[0]
    new_names = ["DOG", "person", "Truck", "car"]
    remap_classes(detector, new_names, "auto", verbose=False)
    with torch.no_grad():
        after = detector(image)[0]
    assert len(before["boxes"]) > 0
    # the softmax sums the same logits in another order: equal up to float rounding
    assert torch.allclose(before["boxes"], after["boxes"], atol=1e-4, rtol=0)
    assert torch.allclose(before["scores"], after["scores"], atol=1e-6, rtol=0)
    renamed = [new_names[i].lower() for i in after["labels"].tolist()]
    assert renamed == [PRETRAINED[i] for i in before["labels"].tolist()]


def test_remap_without_class_map_starts_every_class_fresh(capsys):
    detector = _pretrained_like()
    old = detector.model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    report = remap_classes(detector, ["person", "car"], None)
    assert report.mapped == {} and report.fresh == ["person", "car"]
    new = detector.model.roi_heads.box_predictor.cls_score.weight
    assert torch.equal(new[0], old[0])  # background kept
    assert not torch.equal(new[1], old[1])
    assert "fresh" in capsys.readouterr().err


def test_remap_rejects_a_bad_class_map():
    detector = _pretrained_like()
    with pytest.raises(ConfigError, match="class_map"):
        remap_classes(detector, ["person"], ["person"], verbose=False)


# --- stem: the pure function --------------------------------------------------------------------


def test_expand_conv_weight_inits():
    torch.manual_seed(0)
    weight = torch.randn(8, 3, 3, 3)
    summed = weight.sum(1, keepdim=True)
    assert torch.allclose(expand_conv_weight(weight, 1, "sum"), summed)
    assert torch.allclose(expand_conv_weight(weight, 1, "mean"), summed)
    assert torch.allclose(expand_conv_weight(weight, 2, "sum"), (summed / 2).repeat(1, 2, 1, 1))
    for init in ("zero", "sum"):
        four = expand_conv_weight(weight, 4, init)
        assert torch.equal(four[:, :3], weight) and torch.equal(four[:, 3], torch.zeros(8, 3, 3))
    mean = expand_conv_weight(weight, 5, "mean")
    assert torch.allclose(mean[:, :3], weight * 3 / 5)
    assert torch.allclose(mean[:, 4], weight.mean(1) * 3 / 5)
    assert torch.allclose(mean.sum(1), weight.sum(1))  # equal channels: same response
    random = expand_conv_weight(weight, 4, "random")
    assert torch.equal(random[:, :3], weight) and random[:, 3].abs().sum() > 0
    assert random[:, 3].abs().max() <= 1 / (4 * 9) ** 0.5
    assert expand_conv_weight(weight, 1, "random").shape == (8, 1, 3, 3)
    assert torch.equal(weight, weight.clone())  # input untouched (pure)


def test_expand_conv_weight_refuses_what_it_cannot_do():
    weight = torch.randn(8, 3, 3, 3)
    with pytest.raises(ConfigError, match="needs in_channels >= 3"):
        expand_conv_weight(weight, 1, "zero")
    with pytest.raises(ConfigError, match="valid: sum, zero, mean, random"):
        expand_conv_weight(weight, 4, "copy")
    with pytest.raises(ValueError, match=r"\[O,3,k,k\]"):
        expand_conv_weight(torch.randn(8, 4, 3, 3), 1, "sum")


def test_extend_input_stats():
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    assert extend_input_stats(mean, std, 1) == ([sum(mean) / 3], [sum(std) / 3])
    four_mean, four_std = extend_input_stats(mean, std, 4)
    assert four_mean[:3] == mean and four_std[:3] == std and four_mean[3] == sum(mean) / 3


# --- stem: through the rcnn adapter's hooks -----------------------------------------------------


def _stem_output(detector, image):
    """The stem part (conv + norm [+ activation]) on the adapter's normalised `image` [C,H,W]."""
    x = detector.model.transform.normalize(image)[None]
    stem = detector.parts()["stem"]
    for module in (stem if isinstance(stem, torch.nn.ModuleList) else [stem]):
        x = module(x)
    return x[0]


@pytest.mark.parametrize("arch,norm", [("fasterrcnn_resnet18", "frozen"),
                                       ("fasterrcnn_mobilenet_v2", "batch")])
def test_sum_single_channel_matches_rgb_stem_in_the_interior(arch, norm):
    detector = _pretrained_like(arch, norm=norm)
    grey = torch.rand(1, 40, 48)
    with torch.no_grad():
        rgb = _stem_output(detector, grey.repeat(3, 1, 1))
        adapt_stem(detector, 1, "sum")
        single = _stem_output(detector, grey)
    assert detector.stem_conv().in_channels == 1 and detector.in_channels == 1
    assert detector.stem_conv().bias is None  # folded into the norm: state_dict keys unchanged
    assert len(detector.input_stats()[0]) == 1
    interior = (slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(single[interior], rgb[interior], atol=1e-5, rtol=1e-5)
    # At the border, torchvision's zero padding (in normalised space) stands for a different raw
    # value in each RGB channel: no single-channel filter can reproduce that (surgery.py).
    assert (single - rgb).abs().max() > 1e-3


def test_zero_four_channels_gives_exactly_the_rgb_detections():
    detector = _pretrained_like("fasterrcnn_resnet18")
    detector.model.roi_heads.score_thresh = 0.0
    torch.manual_seed(5)
    rgbt = torch.rand(4, 64, 80)
    with torch.no_grad():
        rgb_out = detector([rgbt[:3]])[0]
        adapt_stem(detector, 4, "zero")
        four_out = detector([rgbt])[0]
    assert len(rgb_out["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(rgb_out[key], four_out[key]), key


def test_mean_four_channels_with_equal_channels_matches_rgb_in_the_interior():
    detector = _pretrained_like("fasterrcnn_mobilenet_v2")
    grey = torch.rand(1, 40, 48)
    with torch.no_grad():
        rgb = _stem_output(detector, grey.repeat(3, 1, 1))
        adapt_stem(detector, 4, "mean")
        four = _stem_output(detector, grey.repeat(4, 1, 1))
    assert torch.allclose(four[:, 2:-2, 2:-2], rgb[:, 2:-2, 2:-2], atol=1e-5, rtol=1e-5)


def test_channel_order_is_kept_rgb():
    """torchvision's weights expect RGB and the data layer delivers RGB: adaptation keeps
    channel c's filter and statistics at channel c (no BGR swap)."""
    detector = _pretrained_like("fasterrcnn_resnet18")
    rgb_weight = detector.stem_conv().weight.detach().clone()
    mean, std = detector.input_stats()
    assert mean == [0.485, 0.456, 0.406] and std == [0.229, 0.224, 0.225]
    adapt_stem(detector, 4, "random")
    assert torch.equal(detector.stem_conv().weight[:, :3], rgb_weight)
    assert detector.input_stats()[0][:3] == mean and detector.input_stats()[1][:3] == std
    # and the model does see the channels in that order: swapping R and B changes the output
    image = torch.rand(3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(_stem_output(detector, torch.cat([image, image[:1]])),
                                  _stem_output(detector, torch.cat([image.flip(0), image[:1]])))


def test_adapt_stem_refusals():
    detector = _pretrained_like("fasterrcnn_resnet18")
    with pytest.raises(ConfigError, match="needs in_channels >= 3"):
        adapt_stem(detector, 1, "zero")
    adapt_stem(detector, 1, "sum")
    with pytest.raises(ConfigError, match="starts from a 3-channel RGB stem"):
        adapt_stem(detector, 4, "zero")


@pytest.mark.shared_data
def test_sum_end_to_end_difference_with_an_imagenet_backbone(shared_weights):
    """Measured, not exact (see surgery.py): with the real ImageNet MobileNetV2 backbone, the
    1-channel `sum` model on a grey image vs the RGB model on it replicated: confident
    detections keep their box and label, and scores move by little."""
    torch.manual_seed(0)
    detector = build_detector("fasterrcnn_mobilenet_v2", ["a", "b"],
                              backbone_weights=str(shared_weights / "mobilenet_v2_imagenet.pth"),
                              min_size=128, max_size=160).eval()
    single = copy.deepcopy(detector)
    adapt_stem(single, 1, "sum")
    y, x = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 150), indexing="ij")
    grey = (0.3 + 0.4 * torch.sin(8 * x) * torch.cos(5 * y) ** 2)[None]
    grey[:, 30:70, 40:90] = 0.9  # a bright block
    with torch.no_grad():
        rgb = detector([grey.repeat(3, 1, 1)])[0]
        one = single([grey])[0]
    confident = rgb["scores"] > 0.3
    assert confident.sum() >= 10
    iou = box_iou(rgb["boxes"][confident], one["boxes"])
    best, index = iou.max(dim=1)
    matched = (best > 0.9) & (one["labels"][index] == rgb["labels"][confident])
    assert matched.float().mean() >= 0.8
    score_diff = (rgb["scores"][confident][matched] - one["scores"][index][matched]).abs()
    assert score_diff.mean() < 0.01
