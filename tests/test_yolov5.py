"""Classic YOLOv5: network rebuilt from a yaml, its losses, head surgery, stem hooks,
and (shared data) the official yolov5n.pt on coco128 and hit_uav_mini."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from detector.errors import CheckpointError
from detector.models.registry import build_detector
from detector.models.surgery import adapt_stem
from detector.models.yolov5.adapter import YOLOv5Detector, import_checkpoint, letterbox, yolov5_yaml

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)

# YOLOv5's v6 layout at a tiny width, so a CPU step takes milliseconds.
TINY_YAML = yolov5_yaml(0.33, 0.0625, 3)
NAMES = ["person", "car", "bicycle"]


def _tiny(**kw) -> YOLOv5Detector:
    torch.manual_seed(0)
    return build_detector("yolov5_classic", NAMES, yaml=copy.deepcopy(TINY_YAML), image_size=64, **kw)


def _targets():
    return [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 44.0]]),
             "labels": torch.tensor([0, 2])},
            {"boxes": torch.tensor([[10.0, 10.0, 40.0, 30.0]]), "labels": torch.tensor([1])}]


def _images():
    torch.manual_seed(1)
    return [torch.rand(3, 48, 64), torch.rand(3, 64, 40)]


def test_losses_are_box_obj_cls():
    """YOLOv5's three losses, each on with boxes in the batch; the contract itself (finite,
    gradients to every part) is tests/test_detector_contract.py."""
    losses = _tiny().train()(_images(), _targets())
    assert set(losses) == {"box", "obj", "cls"}
    assert all(value > 0 for value in losses.values())


def test_training_fits_a_tiny_batch():
    detector = _tiny().train()
    optimizer = torch.optim.Adam(detector.parameters(), lr=0.01)
    images, targets = _images(), _targets()
    first = None
    for _ in range(30):
        loss = sum(detector(images, targets).values())
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first


def test_empty_targets_train_on_objectness_only():
    detector = _tiny().train()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = detector(_images(), empty)
    losses = {name: float(value.detach()) for name, value in losses.items()}
    assert losses["box"] == 0 and losses["cls"] == 0 and losses["obj"] > 0


def test_eval_does_not_depend_on_batch_composition():
    detector = _tiny().eval()
    detector.conf_threshold = 0.0
    images = _images()
    together = detector(images)
    alone = detector([images[1]])
    assert torch.allclose(together[1]["boxes"], alone[0]["boxes"], atol=1e-4)


def test_letterbox_maps_pixels_by_gain_and_pad():
    image = torch.zeros(3, 40, 80)
    image[:, 10, 20] = 1.0
    boxed, gain, (pad_x, pad_y) = letterbox(image, (64, 96), 1.0)
    assert boxed.shape == (3, 64, 96)
    assert (pad_x, pad_y) == (8, 12)
    assert float(boxed[0, 10 + pad_y, 20 + pad_x]) == 1.0
    assert abs(float(boxed[0, 0, 0]) - 114 / 255) < 1e-6
    assert gain.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_parts_cover_every_parameter_once():
    detector = _tiny()
    parts = detector.parts()
    assert list(parts)[0] == "stem" and list(parts)[-2:] == ["neck", "head"]
    assert [n for n in parts if n.startswith("backbone.")] == [f"backbone.{i}" for i in range(4)]
    seen = [id(p) for part in parts.values() for p in part.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in detector.parameters()}
    assert detector.input_stats() is None


def test_build_args_rebuild_the_same_network():
    detector = _tiny().eval()
    rebuilt = build_detector("yolov5_classic", NAMES, weights=None, **detector.build_args()).eval()
    rebuilt.load_state_dict(detector.state_dict())
    batch = torch.rand(1, 3, 64, 64)
    for a, b in zip(detector.raw_outputs(batch), rebuilt.raw_outputs(batch)):
        assert torch.equal(a, b)
    assert torch.equal(detector.model[-1].anchors, rebuilt.model[-1].anchors)


def test_remap_head_keeps_box_rows_and_copies_mapped_class_rows():
    detector = _tiny().eval()
    batch = torch.rand(1, 3, 64, 64)
    before = detector.raw_outputs(batch)
    detector.remap_head(["Bicycle", "Dog"], {0: 2})  # new 0 <- old 2 (bicycle); Dog fresh
    after = detector.raw_outputs(batch)
    assert detector.class_names == ["Bicycle", "Dog"]
    for old, new in zip(before, after):
        assert new.shape[-1] == 5 + 2
        assert torch.allclose(new[..., :5], old[..., :5])
        assert torch.allclose(new[..., 5], old[..., 7])
        # the fresh class starts at YOLOv5's prior for 2 classes, 0.6 / 1.01, whatever the input
        assert torch.allclose(new[..., 6], torch.full_like(new[..., 6], math.log(0.6 / 1.01)))
    losses = detector.train()(_images(), [{"boxes": t["boxes"], "labels": t["labels"] % 2}
                                          for t in _targets()])
    assert torch.isfinite(sum(losses.values()))


def test_sum_stem_on_grey_equals_rgb_on_replicated_grey():
    rgb = _tiny().eval()
    grey_model = copy.deepcopy(rgb)
    adapt_stem(grey_model, 1, "sum")
    assert grey_model.stem_conv().in_channels == 1 and grey_model.in_channels == 1
    grey = torch.rand(1, 48, 64)
    expected = rgb([grey.repeat(3, 1, 1)])[0]
    got = grey_model([grey])[0]
    for a, b in zip(rgb.raw_outputs(_pad64(grey.repeat(3, 1, 1))), grey_model.raw_outputs(_pad64(grey))):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(expected["scores"], got["scores"], atol=1e-5)
    assert torch.allclose(expected["boxes"], got["boxes"], atol=1e-3)


def _pad64(image):
    return torch.nn.functional.pad(image, (0, 64 - image.shape[-1], 0, 64 - image.shape[-2]))[None]


def test_zero_stem_on_rgbt_equals_rgb():
    rgb = _tiny().eval()
    fused = copy.deepcopy(rgb)
    adapt_stem(fused, 4, "zero")
    image = torch.rand(3, 48, 64)
    thermal = torch.rand(1, 48, 64)
    for a, b in zip(rgb.raw_outputs(_pad64(image)), fused.raw_outputs(_pad64(torch.cat([image, thermal])))):
        assert torch.allclose(a, b, atol=1e-6)
    expected, got = rgb([image])[0], fused([torch.cat([image, thermal])])[0]
    assert torch.equal(expected["labels"], got["labels"])
    assert torch.allclose(expected["boxes"], got["boxes"], atol=1e-4)


def test_run_checkpoint_round_trip_after_stem_adaptation(tmp_path):
    from detector.checkpoint import describe_detector, save_checkpoint
    from detector.models.loading import load_model

    detector = _tiny().eval()
    adapt_stem(detector, 1, "sum")
    path = tmp_path / "grey.pt"
    save_checkpoint(path, {**describe_detector(detector), "model": detector.state_dict(), "epoch": 0})
    loaded = load_model(path)
    assert loaded.in_channels == 1
    batch = torch.rand(1, 1, 64, 64)
    for a, b in zip(detector.raw_outputs(batch), loaded.raw_outputs(batch)):
        assert torch.equal(a, b)


class _Foreign:
    pass


def _pickled_under(module_name, tmp_path):
    """A checkpoint holding an object whose class claims to live in `module_name`."""
    import sys
    import types

    module = types.ModuleType(module_name)
    _Foreign.__module__ = module_name
    module._Foreign = _Foreign
    sys.modules[module_name] = module
    try:
        path = tmp_path / "foreign.pt"
        torch.save({"model": _Foreign()}, path)
    finally:
        del sys.modules[module_name]
        _Foreign.__module__ = __name__
    return path


def test_import_checkpoint_declines_other_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.ones(1)}}, plain)
    assert import_checkpoint(plain) is None
    assert import_checkpoint(_pickled_under("ultralytics.not_yolov5", tmp_path)) is None
    with pytest.raises(CheckpointError, match="refused"):
        import_checkpoint(_pickled_under("somewhere_else", tmp_path))
    with pytest.raises(CheckpointError):
        broken = tmp_path / "broken.pt"
        broken.write_bytes(plain.read_bytes()[:50])
        import_checkpoint(broken)


def test_yolov5n_arch_builds_from_scratch_and_steps():
    detector = build_detector("yolov5n", NAMES, image_size=64).train()
    assert detector.arch == "yolov5n" and detector.stem_conv().out_channels == 16
    losses = detector(_images(), _targets())
    sum(losses.values()).backward()
    detector.eval()
    assert len(detector(_images())) == 2


# --- the official yolov5n.pt on real data (../shared) ---

def _coco128_val(shared_data):
    from detector.data.readers import read_dataset

    return read_dataset("coco128", split="val2017")


def _first_images(records, count):
    import dataclasses

    return dataclasses.replace(records, images=records.images[:count])


@pytest.mark.shared_data
@pytest.mark.slow
def test_yolov5n_reaches_yolov5_val_map_on_coco128(shared_data, shared_weights):
    """YOLOv5's val.py: 0.343 mAP50-95 on these 128 images at 640, conf 0.001, IoU 0.6."""
    from detector.evaluation.coco import evaluate

    detector = import_checkpoint(shared_weights / "yolov5n.pt")
    metrics = evaluate(detector, _coco128_val(shared_data), backend="pycocotools", batch_size=8,
                       device="cpu", progress=False)
    assert metrics.stats["AP"] >= 0.33
    assert metrics.stats["AP50"] >= 0.50


@pytest.mark.shared_data
def test_rgb_order_beats_bgr_on_coco128(shared_data, shared_weights):
    """The checkpoint expects RGB: swapping to BGR must cost accuracy on real images."""
    from detector.data.dataset import DetectionDataset
    from detector.evaluation.coco import evaluate_predictions

    records = _first_images(_coco128_val(shared_data), 12)
    dataset = DetectionDataset(records)
    detector = import_checkpoint(shared_weights / "yolov5n.pt")
    images = [dataset[i][0] for i in range(len(dataset))]
    rgb = [{k: v.numpy() for k, v in p.items()} for p in detector(images)]
    bgr = [{k: v.numpy() for k, v in p.items()} for p in detector([im.flip(0) for im in images])]
    rgb_ap = evaluate_predictions(records, rgb, "pycocotools").stats["AP"]
    bgr_ap = evaluate_predictions(records, bgr, "pycocotools").stats["AP"]
    assert rgb_ap > bgr_ap + 0.02, (rgb_ap, bgr_ap)


@pytest.mark.shared_data
def test_load_model_imports_yolov5_checkpoint(shared_weights):
    from detector.models.loading import load_model

    detector = load_model(shared_weights / "yolov5n.pt")
    assert isinstance(detector, YOLOv5Detector) and len(detector.class_names) == 80
    assert not detector.training


@pytest.mark.shared_data
@pytest.mark.slow
def test_zero_shot_hit_uav_mini_with_class_map_auto(shared_data, shared_weights):
    """Thermal (1 channel, `sum` stem) + class_map auto: Person/Car/Bicycle come from COCO's
    person/car/bicycle rows and score above 0; OtherVehicle has no pretrained row: its fresh row
    starts at YOLOv5's class prior and fires only where COCO objectness does (AP50 0.003 vs
    Person 0.100, Car 0.168, Bicycle 0.0003 measured): below the mapped person and car."""
    from detector.data.readers import read_dataset
    from detector.evaluation.coco import evaluate

    records = read_dataset("hit_uav_mini", split="val")
    detector = build_detector("yolov5n", records.class_names, weights=shared_weights / "yolov5n.pt",
                              in_channels=1, class_map="auto")
    assert detector.in_channels == 1
    metrics = evaluate(detector, records, backend="pycocotools", batch_size=8, device="cpu",
                       progress=False)
    ap50 = {name: values["AP50"] for name, values in metrics.per_class.items()}
    assert ap50["Person"] > 0 and ap50["Car"] > 0 and ap50["Bicycle"] > 0, ap50
    assert ap50["OtherVehicle"] < min(ap50["Person"], ap50["Car"]), ap50


def test_rejects_images_with_the_wrong_channel_count():
    detector = _tiny().eval()
    with pytest.raises(ValueError, match=r"expects \[3,H,W\] images.*convert --to ir"):
        detector([torch.rand(1, 32, 32)])


class _Squares(torch.utils.data.Dataset):
    """Bright squares on a dark background, one per image, class = index % 3."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        image = torch.full((3, 64, 64), 0.1)
        x, y = 8 + 6 * index, 10 + 4 * index
        image[:, y:y + 24, x:x + 24] = 0.9
        target = {"boxes": torch.tensor([[x, y, x + 24, y + 24]], dtype=torch.float32),
                  "labels": torch.tensor([index % 3]), "ignore": torch.zeros(0, 4),
                  "index": index, "image_id": index, "orig_size": (64, 64), "scale": (1.0, 1.0),
                  "pad": (0, 0)}
        return image, target


def test_fit_writes_a_checkpoint_that_rebuilds_the_model(tmp_path):
    from detector.checkpoint import load_checkpoint
    from detector.models.loading import load_model
    from detector.train.engine import fit

    detector = _tiny()
    fit(detector, _Squares(), None, out_dir=tmp_path / "run", epochs=1, batch_size=2, amp=False,
        device="cpu", show_progress=False)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["arch"] == "yolov5_classic" and state["build_args"]["image_size"] == 64
    rebuilt = load_model(tmp_path / "run" / "last.pt")
    detector.eval()
    batch = torch.rand(1, 3, 64, 64)
    for a, b in zip(detector.raw_outputs(batch), rebuilt.raw_outputs(batch)):
        assert torch.allclose(a, b, atol=1e-6)


def test_target_assignment_matches_yolov5_rules():
    """A 16x16 px box centred at (19.2, 19.2) in a 64x64 input (YOLOv5's default anchors):
    stride 8: all 3 anchors within ratio 4, centre cell (2,2) plus its left and top neighbours
    (the centre sits in the first half of its cell) -> 9 positives; stride 16: 2 anchors (the
    third is 7.4x taller) x 3 cells -> 6; stride 32: every anchor more than 4x larger -> 0."""
    from detector.models.yolov5.loss import AnchorLoss

    detector = _tiny()
    head = detector.model[-1]
    raw = [torch.zeros(1, 3, size, size, 8) for size in (8, 4, 2)]
    targets = torch.tensor([[0, 1, 0.3, 0.3, 0.25, 0.25]])
    assigned = AnchorLoss(head.anchors, 3, 64).build_targets(raw, targets)
    counts = [len(level[0]) for level in assigned]
    assert counts == [9, 6, 0]
    image, anchor, cell_y, cell_x, box, cls, _ = assigned[0]
    assert set(zip(cell_x.tolist(), cell_y.tolist())) == {(2, 2), (1, 2), (2, 1)}
    assert set(anchor.tolist()) == {0, 1, 2} and set(cls.tolist()) == {1}
    # box centre relative to its cell: 0.4 in the own cell, 1.4 seen from the left neighbour
    assert {round(v, 4) for v in box[:, 0].tolist()} == {0.4, 1.4}
    assert torch.allclose(box[:, 2:], torch.full_like(box[:, 2:], 2.0))


def test_a_single_fresh_class_gets_a_class_gradient():
    """The class loss stays on for one class (YOLOv5 turns it off): a single class mapped from a
    pretrained row starts at COCO's class probability, and only this gradient moves it."""
    from detector.models.yolov5.loss import AnchorLoss

    anchors = torch.tensor([[[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]]])  # one level
    loss = AnchorLoss(anchors, num_classes=1, image_size=64)
    raw = [torch.full((1, 3, 8, 8, 6), -2.0, requires_grad=True)]
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.25, 0.3]])
    losses = loss(raw, targets)
    assert losses["cls"] > 0
    losses["cls"].backward()
    assert raw[0].grad[..., 5].abs().sum() > 0
