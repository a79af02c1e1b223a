"""Exponential moving average of a model's weights (the EMA that YOLO and timm evaluate).

    ema = ModelEMA(model, decay=0.9998, ramp=2000)
    ... optimizer.step(); ema.update(model)

The effective decay ramps up as `decay * (1 - exp(-updates / ramp))`: early weights are mostly
noise, so the average follows the model closely at first and settles later.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """A frozen copy of `model` (`.module`, eval mode) whose float tensors track the model's."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, ramp: float = 2000.0):
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = 0

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model`'s current weights and buffers (an unwrapped model)."""
        self.updates += 1
        decay = self.current_decay()
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(source[name].detach(), 1.0 - decay)
            else:  # counters such as num_batches_tracked are copied, not averaged
                value.copy_(source[name])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "decay": self.decay, "ramp": self.ramp,
                "model": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
        self.ramp = float(state["ramp"])
        self.module.load_state_dict(state["model"])
