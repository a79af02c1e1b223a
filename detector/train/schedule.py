"""Learning-rate schedule: linear warmup, then cosine decay (or constant), stepped per batch.

The factor multiplies each param group's `base_lr * lr_scale` (lr_scale comes from
train/freezing.py), so one schedule serves every stage and every per-part multiplier.
With `warmup_bias_lr` > 0 the bias groups (freezing.param_groups marks them `bias`) instead
fall linearly from `warmup_bias_lr * lr_scale` to their full lr during the warmup, as YOLO's
trainers do (0.1 there): a fresh head's biases (the class priors) move before the weights do.
The only state is the step count, stored in checkpoints.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer


class WarmupCosine:
    """lr factor at step s (0-based, counted over the whole run):
    warmup: warmup_start + (1 - warmup_start) * s / warmup_steps;
    then cosine from 1 to `final_ratio` at `total_steps` (1 throughout when cosine=False)."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, cosine: bool = True,
                 final_ratio: float = 0.01, warmup_start: float = 0.001,
                 warmup_bias_lr: float = 0.0):
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.cosine = cosine
        self.final_ratio = final_ratio
        self.warmup_start = warmup_start
        self.warmup_bias_lr = warmup_bias_lr
        self.step_count = 0

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
        if not self.cosine:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.final_ratio + (1.0 - self.final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer: Optimizer, base_lr: float) -> float:
        """Set every group's lr for the current step; returns the factor."""
        factor = self.factor(self.step_count)
        in_warmup = self.warmup_bias_lr > 0 and self.step_count < self.warmup_steps
        for group in optimizer.param_groups:
            scale = group.get("lr_scale", 1.0)
            if in_warmup and group.get("bias"):
                done = self.step_count / self.warmup_steps
                group["lr"] = scale * (self.warmup_bias_lr + (base_lr - self.warmup_bias_lr) * done)
            else:
                group["lr"] = base_lr * scale * factor
        return factor

    def step(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
