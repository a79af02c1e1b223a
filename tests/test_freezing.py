"""Staged freezing: part matching, presets, BatchNorm of frozen parts, parameter groups."""

from __future__ import annotations

import pytest
import torch

from detector.errors import ConfigError
from detector.train.freezing import (
    Stage, apply_stage, match_parts, param_groups, preset_stages, resolve_stages, stage_at,
)
from toy_detector import ToyDataset, ToyDetector, collate

PARTS = ["stem", "backbone.0", "backbone.1", "neck", "head"]


def trainable_parts(detector):
    return [name for name, module in detector.parts().items()
            if any(p.requires_grad for p in module.parameters())]


def test_prefix_matching():
    assert match_parts(PARTS, ["backbone"]) == ["backbone.0", "backbone.1"]
    assert match_parts(PARTS, ["head", "backbone.1"]) == ["backbone.1", "head"]
    with pytest.raises(ConfigError, match="'back' matches no part.*stem, backbone.0"):
        match_parts(PARTS, ["back"])
    with pytest.raises(ConfigError, match="'backbone.7' matches no part"):
        resolve_stages(PARTS, stages=[{"epochs": 1, "train": ["backbone.7"]}])


def test_presets():
    assert preset_stages("feature_extraction", 3, PARTS) == [Stage(3, ("head",))]
    assert preset_stages("finetune_top", 3, PARTS) == [Stage(3, ("head", "neck", "backbone.1"))]
    assert preset_stages("finetune_all", 2, PARTS)[0].train == tuple(PARTS)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_stages("finetune_some", 1, PARTS)
    assert resolve_stages(PARTS, epochs=4)[0] == Stage(4, tuple(PARTS), {})


def test_stage_at():
    stages = [Stage(2, ("head",)), Stage(3, ("head", "neck"))]
    assert [stage_at(stages, e)[0] for e in range(5)] == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        stage_at(stages, 5)


def batchnorm_state(module):
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "batches" in k}


def train_steps(detector, steps=3):
    detector.train()
    optimizer = torch.optim.SGD([p for p in detector.parameters() if p.requires_grad], lr=0.1)
    data = ToyDataset(4)
    images, targets = collate([data[i] for i in range(4)])
    for _ in range(steps):
        losses = detector(images, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()


def test_batchnorm_of_frozen_parts_keeps_its_running_statistics():
    torch.manual_seed(0)
    detector = ToyDetector(["a", "b"])
    apply_stage(detector, Stage(1, ("head", "neck", "backbone.1")))
    before_stem = batchnorm_state(detector.stem)
    before_stage0 = batchnorm_state(detector.stage0)
    stem_weights = [p.clone() for p in detector.stem.parameters()]
    train_steps(detector)
    assert detector.training and not detector.stem[1].training  # eval although model.train()
    for before, module in ((before_stem, detector.stem), (before_stage0, detector.stage0)):
        after = batchnorm_state(module)
        assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(a, b) for a, b in zip(stem_weights, detector.stem.parameters()))
    # The next stage unfreezes backbone.0: its BatchNorm trains and its statistics move.
    apply_stage(detector, Stage(1, ("head", "neck", "backbone")))
    train_steps(detector, steps=1)
    assert detector.stage0[1].training
    after = batchnorm_state(detector.stage0)
    assert not torch.equal(before_stage0["1.running_mean"], after["1.running_mean"])
    assert torch.equal(before_stem["1.running_mean"], batchnorm_state(detector.stem)["1.running_mean"])


def test_stage_switch_changes_trainable_parameters_and_lr_groups():
    detector = ToyDetector(["a", "b"])
    first, second = resolve_stages(PARTS, stages=[
        {"epochs": 1, "train": ["head"]},
        {"epochs": 1, "train": ["head", "neck", "backbone"], "lr_mult": {"backbone": 0.1,
                                                                        "backbone.1": 0.5}},
    ])
    apply_stage(detector, first)
    assert trainable_parts(detector) == ["head"]
    groups = param_groups(detector, first, base_lr=0.01, weight_decay=1e-4)
    assert {g["part"] for g in groups} == {"head"}
    assert sum(len(g["params"]) for g in groups) == 2

    apply_stage(detector, second)
    assert trainable_parts(detector) == ["backbone.0", "backbone.1", "neck", "head"]
    groups = param_groups(detector, second, base_lr=0.01, weight_decay=1e-4)
    lrs = {g["part"]: g["lr"] for g in groups}
    assert lrs == pytest.approx({"backbone.0": 0.001, "backbone.1": 0.005, "neck": 0.01, "head": 0.01})
    grouped = {id(p) for g in groups for p in g["params"]}
    wanted = {id(p) for p in detector.parameters() if p.requires_grad}
    assert grouped == wanted and sum(len(g["params"]) for g in groups) == len(wanted)


def test_no_weight_decay_on_biases_and_norms():
    detector = ToyDetector(["a"])
    stage = Stage(1, tuple(PARTS))
    apply_stage(detector, stage)
    for group in param_groups(detector, stage, base_lr=0.1, weight_decay=0.05):
        expected = 0.05 if all(p.ndim > 1 for p in group["params"]) else 0.0
        assert all((p.ndim > 1) == (expected > 0) for p in group["params"])
        assert group["weight_decay"] == expected
    bn_weight = detector.stem[1].weight
    groups = param_groups(detector, stage, base_lr=0.1, weight_decay=0.05)
    assert next(g for g in groups if any(p is bn_weight for p in g["params"]))["weight_decay"] == 0


def test_layer_wise_decay():
    detector = ToyDetector(["a"])
    stage = Stage(1, tuple(PARTS), {"stem": 0.5})
    apply_stage(detector, stage)
    lrs = {g["part"]: g["lr"] for g in param_groups(detector, stage, 1.0, 0.0, layer_decay=0.5)}
    assert lrs == pytest.approx({"head": 1.0, "neck": 0.5, "backbone.1": 0.25, "backbone.0": 0.125,
                                 "stem": 0.5 * 0.0625})
