"""What every domain-adaptation method is: a module whose forward is its loss for one step.

    class MyMethod(AlignmentMethod):
        OPTIONS = {"scale": 1.0}            # the options it takes, with their defaults
        def forward(self, batch: AdaptBatch, strength: float) -> Tensor: ...   # a scalar

`strength` (0..1) is the method's schedule at this step (detector/adapt/adaptation.py ramps it
from 0 to 1): adversarial methods scale the reversed gradient by it, the others their loss. The
method's weight multiplies the result outside. Methods with trainable parameters (a domain
classifier) get them trained with the detector's optimizer and saved in its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AdaptBatch:
    """One step's inputs.

    - detector: the student (the Detector being trained, unwrapped, in train mode)
    - source_images / target_images: lists of [C,H,W] floats in 0..1 on the training device
      (target images went through the training transforms: the weak view)
    - source_features / target_features: `detector.features(...)` of each, [B,C_l,H_l,W_l] per
      level, with gradients (computed once per step, in one batch, when a method needs them)
    """

    detector: nn.Module
    source_images: list[torch.Tensor]
    target_images: list[torch.Tensor]
    source_features: list[torch.Tensor] | None = None
    target_features: list[torch.Tensor] | None = None


class AlignmentMethod(nn.Module):
    """Base class. `uses_features`: the loss is on `detector.features()`, so it reaches every
    part but the head; otherwise it reaches every part (a loss through the detector's head)."""

    name: str = ""
    OPTIONS: dict = {}
    uses_features: bool = True

    def __init__(self, detector: nn.Module, feature_channels: list[int], options: dict):
        super().__init__()
        self.options = {**self.OPTIONS, **options}

    def forward(self, batch: AdaptBatch, strength: float) -> torch.Tensor:
        raise NotImplementedError
