"""train/schedule.py: the warmup + cosine factors at fixed steps, and the loop applying them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detector.train.engine import train_one_epoch
from detector.train.schedule import WarmupCosine
from toy_detector import ToyDataset, ToyDetector, collate


def test_factors_at_fixed_steps():
    schedule = WarmupCosine(total_steps=110, warmup_steps=10, final_ratio=0.01, warmup_start=0.001)
    assert schedule.factor(0) == pytest.approx(0.001)
    assert schedule.factor(5) == pytest.approx(0.001 + 0.999 * 0.5)
    assert schedule.factor(10) == pytest.approx(1.0)
    # half-way through the cosine: the mean of 1 and final_ratio
    assert schedule.factor(60) == pytest.approx(0.505)
    assert schedule.factor(110) == pytest.approx(0.01)
    assert schedule.factor(500) == pytest.approx(0.01)  # stays at the floor past the end
    quarter = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert schedule.factor(35) == pytest.approx(quarter)


def test_constant_after_warmup_without_cosine():
    schedule = WarmupCosine(total_steps=100, warmup_steps=4, cosine=False)
    assert schedule.factor(2) == pytest.approx(0.001 + 0.999 * 0.5)
    assert [schedule.factor(s) for s in (4, 50, 99)] == [1.0, 1.0, 1.0]


def test_apply_scales_each_group_by_its_lr_scale():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [a], "lr_scale": 1.0},
                                 {"params": [b], "lr_scale": 0.1}], lr=1.0)
    schedule = WarmupCosine(total_steps=20, warmup_steps=10)
    schedule.step_count = 5
    factor = schedule.apply(optimizer, base_lr=0.02)
    assert factor == pytest.approx(0.5005)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * 0.5005)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.002 * 0.5005)


def _one_epoch(clip_grad=None, warmup_steps=0, total_steps=100):
    torch.manual_seed(0)
    model = ToyDetector(["a", "b"])
    loader = torch.utils.data.DataLoader(ToyDataset(8), batch_size=2, collate_fn=collate)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = WarmupCosine(total_steps=total_steps, warmup_steps=warmup_steps)
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    summary = train_one_epoch(model, loader, optimizer, schedule, scaler, epoch=0,
                              device=torch.device("cpu"), base_lr=0.5, clip_grad=clip_grad,
                              show_progress=False)
    moved = [p.detach() - b for p, b in zip(model.parameters(), before)]
    return summary, schedule, moved


def test_the_loop_follows_the_schedule():
    summary, schedule, _ = _one_epoch(warmup_steps=10)
    assert schedule.step_count == 4  # 8 images, batch 2
    # the lr of the last step (step 3) is warmup's, not the base lr
    assert summary["lr"] == pytest.approx(0.5 * schedule.factor(3))
    assert summary["lr"] < 0.5 * 0.5


def test_the_loop_clips_the_gradient_norm():
    # SGD without momentum at lr 0.5: each step moves the parameters by 0.5 * the clipped grad
    _, _, clipped = _one_epoch(clip_grad=1e-3)
    step_norm = torch.cat([m.flatten() for m in clipped]).norm().item()
    assert step_norm <= 4 * 0.5 * 1e-3 * (1 + 1e-4)  # 4 steps, each at most lr * max_norm
    _, _, free = _one_epoch(clip_grad=None)
    assert torch.cat([m.flatten() for m in free]).norm().item() > 10 * step_norm


def test_bias_warmup_falls_from_its_own_lr_while_the_rest_rises():
    """YOLO's warmup: biases start high (the fresh head's class priors move first) and fall to
    the run's lr; the other groups rise from ~0. After the warmup both follow the factor."""
    from detector.train.freezing import Stage, apply_stage, param_groups

    detector = ToyDetector(["a"])
    stage = Stage(1, tuple(detector.parts()))
    apply_stage(detector, stage)
    groups = param_groups(detector, stage, base_lr=0.01, weight_decay=1e-4)
    biases = {id(p) for n, p in detector.named_parameters() if n.endswith("bias")}
    assert {id(p) for g in groups if g["bias"] for p in g["params"]} == biases
    optimizer = torch.optim.SGD(groups, lr=0.01)
    schedule = WarmupCosine(total_steps=20, warmup_steps=10, warmup_bias_lr=0.1)
    seen = []
    for _ in range(12):
        schedule.apply(optimizer, 0.01)
        seen.append({g["bias"]: g["lr"] for g in groups})
        schedule.step()
    assert seen[0][True] == pytest.approx(0.1) and seen[0][False] == pytest.approx(1e-5)
    assert seen[5][True] == pytest.approx(0.055) and seen[5][False] == pytest.approx(0.01 * (0.001 + 0.999 * 0.5))
    assert seen[10][True] == seen[10][False] == pytest.approx(0.01 * schedule.factor(10))
    plain = WarmupCosine(total_steps=20, warmup_steps=10)  # default: no bias warmup
    plain.apply(optimizer, 0.01)
    assert all(g["lr"] == pytest.approx(1e-5) for g in groups)
