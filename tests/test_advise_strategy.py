"""The decision side of `detector advise`: the quadrant follows the seed matrix, the training plan
follows the quadrant and the gap profile, image size from object sizes, stem init from channels."""

from __future__ import annotations

import numpy as np
import pytest

from detector.advisor.channels import ChannelInfo, PixelRange, stem_init_for
from detector.advisor.size import DataSize, measure_size, recommend_image_size
from detector.advisor.strategy import (
    LARGE_IMAGES, LARGE_SMALLEST_CLASS, SEED_MATRIX, THRESHOLDS, classify, default_epochs,
    departure_part, plan_training, warmup_epochs,
)
from detector.config import config_from_dict
from detector.data.records import DatasetRecords, ImageRecord
from detector.errors import ConfigError

PARTS = ["stem", "backbone.0", "backbone.1", "backbone.2", "neck", "head"]
SIMILAR = THRESHOLDS["skl"].similar


def _size(images: int, smallest: int) -> DataSize:
    return DataSize(images=images, boxes=smallest * 3, boxes_per_class={"a": smallest * 2,
                    "b": smallest}, empty_images=0, input_size=640)


SMALL, LARGE = _size(100, 50), _size(LARGE_IMAGES, LARGE_SMALLEST_CLASS)
NEAR, FAR = 0.5 * SIMILAR, 5 * SIMILAR


@pytest.mark.parametrize("size, gap, quadrant", [
    (SMALL, NEAR, ("small", "similar")), (SMALL, FAR, ("small", "different")),
    (LARGE, NEAR, ("large", "similar")), (LARGE, FAR, ("large", "different")),
])
def test_quadrant_follows_the_seed_matrix(size, gap, quadrant):
    found = classify(size, gap)
    assert (found.size, found.similarity) == quadrant
    assert found.seed_advice == SEED_MATRIX[quadrant]
    assert f"{gap:.3f}" in found.similarity_reason and str(size.images) in found.size_reason


def test_size_needs_images_and_a_large_smallest_class():
    assert classify(_size(LARGE_IMAGES, LARGE_SMALLEST_CLASS - 1), NEAR).size == "small"
    assert classify(_size(LARGE_IMAGES - 1, LARGE_SMALLEST_CLASS), NEAR).size == "small"


def _gaps(**values):
    gaps = {part: NEAR for part in PARTS}
    gaps["head"] = None  # no BatchNorm in a detection head
    gaps.update({k.replace("_", "."): v for k, v in values.items()})
    return gaps


def _plan(size, gaps, fresh_head=True, epochs=10):
    score = np.mean([g for g in gaps.values() if g is not None])
    return plan_training(classify(size, score), gaps, PARTS, fresh_head, epochs, size.images, 8)


def test_small_similar_trains_the_top():
    plan = _plan(SMALL, _gaps(), fresh_head=False)
    assert plan.preset == "feature_extraction" and plan.frozen == PARTS[:-1]
    assert plan.lr_mult == {"head": 0.1}  # pretrained rows that fit move slowly
    plan = _plan(SMALL, _gaps(), fresh_head=True)
    assert plan.preset == "finetune_top" and plan.frozen == ["stem", "backbone.0", "backbone.1"]
    assert plan.lr_mult == {"backbone.2": 0.1, "neck": 0.1}  # the fresh head at the full lr


def test_large_similar_fine_tunes_everything():
    plan = _plan(LARGE, _gaps())
    assert plan.preset == "finetune_all" and plan.frozen == []


def test_small_different_keeps_the_layers_before_the_departure():
    gaps = _gaps(backbone_1=FAR * 4, backbone_2=FAR * 4, neck=FAR * 4)
    assert departure_part(gaps) == "backbone.1"
    plan = _plan(SMALL, gaps, epochs=30)
    assert plan.departure == "backbone.1"
    assert plan.frozen == ["stem", "backbone.0"]
    assert plan.warmup_epochs == 3.0
    assert plan.stages[0] == {"epochs": 6, "train": ["head"], "lr_mult": {}}
    assert plan.stages[1] == {"epochs": 24, "train": ["backbone.1", "backbone.2", "neck", "head"],
                              "lr_mult": {}}
    # a short run: the warmup (a third of it) covers the head-only stage, which is dropped
    short = _plan(SMALL, gaps, epochs=6)
    assert short.warmup_epochs == 2.0 and len(short.stages) == 1
    assert short.stages[0]["epochs"] == 6
    assert "warmup covers" in " ".join(short.why)


def test_large_different_trains_every_part_from_the_pretrained_init():
    gaps = _gaps(backbone_1=FAR * 4, backbone_2=FAR * 4, neck=FAR * 4)
    plan = _plan(LARGE, gaps)
    assert plan.frozen == [] and plan.stages[-1]["train"] == PARTS
    # the parts whose gap is small still move at the pretrained rate
    assert plan.stages[-1]["lr_mult"] == {"stem": 0.1, "backbone.0": 0.1}


def test_no_fresh_head_needs_no_head_stage_and_a_deep_gap_warns():
    gaps = _gaps(stem=FAR, neck=THRESHOLDS["skl"].far * 2)
    plan = _plan(SMALL, gaps, fresh_head=False)
    assert len(plan.stages) == 1 and plan.frozen == []
    assert any("negative transfer" in w and "scratch may win" in w for w in plan.warnings)
    assert not _plan(SMALL, _gaps(stem=FAR), fresh_head=False).warnings


def test_a_model_without_batchnorm_trains_every_part_when_different():
    gaps = {part: None for part in PARTS}
    plan = plan_training(classify(SMALL, FAR), gaps, PARTS, True, 10, 100, 8)
    assert plan.departure is None and plan.frozen == []
    assert "no BatchNorm" in plan.why[0]


def test_plans_become_valid_configs():
    for size, gaps in ((SMALL, _gaps()), (SMALL, _gaps(backbone_1=FAR)), (LARGE, _gaps())):
        plan = _plan(size, gaps)
        train = {"stages": plan.stages} if plan.stages else {
            "epochs": plan.epochs, "preset": plan.preset, "lr_mult": plan.lr_mult}
        config_from_dict({"model": {"arch": "yolov5n"}, "data": {"train": "x"}, "train": train})


def test_schedule_heuristics():
    assert default_epochs(images=50, batch_size=8) == 100  # capped
    assert default_epochs(images=8000, batch_size=8) == 10  # floor
    assert warmup_epochs(images=800, batch_size=8, epochs=30) == 1.0  # 100 iterations
    assert warmup_epochs(images=40, batch_size=8, epochs=30) == 3.0  # at most 3 epochs
    assert warmup_epochs(images=40, batch_size=8, epochs=3) == 1.0  # at most a third of the run


def _records(box_side: float, count: int = 20, width: int = 1280, height: int = 960):
    images = [ImageRecord(i, {"rgb": f"{i}.png"}, width, height,
                          boxes=np.array([[10, 10, 10 + box_side, 10 + box_side]], np.float32),
                          labels=np.array([i % 2], np.int64)) for i in range(count)]
    return DatasetRecords(images, ["cat", "dog"], [0, 1])


def test_object_sizes_and_the_image_size():
    size = measure_size(_records(box_side=40), input_size=640)
    assert size.boxes == 20 and size.boxes_per_class == {"cat": 10, "dog": 10}
    assert size.object_px[50] == pytest.approx(20.0)  # 40 px of 1280 at 640
    assert recommend_image_size(size)[0] == 320  # 10 px at 320 is still over 8
    tiny = measure_size(_records(box_side=8), input_size=640)
    assert tiny.small_share == 1.0
    chosen, why = recommend_image_size(tiny)
    assert chosen == 1280 and "tiling" not in why  # 8 px at the native 1280
    tinier, why = recommend_image_size(measure_size(_records(box_side=4), 640))
    assert tinier == 1280 and "tiling" in why


def test_stem_init_preserves_the_rgb_function_or_refuses():
    assert stem_init_for(3, 3, "--model m") is None
    assert stem_init_for(3, 1, "--model m") == "sum"
    assert stem_init_for(3, 4, "--model m") == "zero"
    with pytest.raises(ConfigError, match=r"--model m: the model takes 1 channels and the data "
                                          r"has 4; a stem can only be adapted from a 3-channel"):
        stem_init_for(1, 4, "--model m")


def test_sixteen_bit_range_note():
    narrow = PixelRange()
    narrow.add(np.full((8, 8, 1), 20000, np.uint16) + np.arange(64, dtype=np.uint16).reshape(8, 8, 1))
    full = PixelRange()
    full.add(np.linspace(0, 255, 64).astype(np.uint8).reshape(8, 8, 1))
    info = ChannelInfo(["lwir", "rgb"], 4, bits={"lwir": narrow.bits, "rgb": full.bits},
                       range_used={"lwir": narrow.used(), "rgb": full.used()})
    assert info.bits == {"lwir": 16, "rgb": 8}
    notes = info.notes()
    assert len(notes) == 1 and notes[0].startswith("lwir: 16-bit pixels use")
