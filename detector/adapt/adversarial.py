"""Adversarial feature alignment: a gradient reversal layer and a small convolutional domain
classifier on each feature level (the image-level discriminator of DA-Faster R-CNN, Chen et al.
2018; gradient reversal from DANN, Ganin & Lempitsky 2015).

Each classifier learns to tell, at every location of a level, whether the features came from a
source image (0) or a target image (1). Between the features and the classifier the gradient is
multiplied by -lambda: the classifier gets better at telling the domains apart while the detector
learns features it cannot tell apart. lambda is the schedule's strength (0 -> 1, DANN's ramp)
times the `lambda` option.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detector.adapt.method import AdaptBatch, AlignmentMethod
from detector.adapt.registry import register_method
from detector.errors import ConfigError


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by -coefficient."""
    return _ReverseGradient.apply(x, float(coefficient))


class DomainClassifier(nn.Module):
    """[B,C,H,W] features -> [B,1,H,W] logits (target domain = 1): 3x3 conv, ReLU, 1x1 conv.

    The hidden layer keeps PyTorch's default (Kaiming-uniform) initialisation, the output layer
    starts at std 0.01 (logits near 0: chance). DA-Faster starts both at std 0.001 and trains
    for 70k steps; with both that small, a fine-tune of tens of steps never left chance (the
    domain loss stayed at ln 2 in every run measured: README, domain adaptation)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(hidden, 1, 1))
        nn.init.normal_(self.layers[2].weight, std=0.01)
        nn.init.zeros_(self.layers[2].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def domain_loss(classifier: DomainClassifier, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-location binary cross-entropy, each domain weighted equally."""
    source_logits, target_logits = classifier(source), classifier(target)
    return 0.5 * (F.binary_cross_entropy_with_logits(source_logits, torch.zeros_like(source_logits))
                  + F.binary_cross_entropy_with_logits(target_logits, torch.ones_like(target_logits)))


@register_method("adversarial")
class AdversarialAlignment(AlignmentMethod):
    """Options: lambda (the reversed gradient's scale at full strength, 1.0), hidden (the
    classifiers' hidden channels, 128), lr (the classifiers' own learning rate, 0.1, under the
    run's warmup and decay: they learn from nothing while the detector is only nudged; at a
    fine-tune's lr of 0.001-0.005 they stayed at chance)."""

    OPTIONS = {"lambda": 1.0, "hidden": 128, "lr": 0.1}

    def __init__(self, detector: nn.Module, feature_channels: list[int], options: dict):
        super().__init__(detector, feature_channels, options)
        for key in ("lambda", "hidden", "lr"):
            value = self.options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"options.{key}: expected a positive number, got {value!r}")
        hidden = int(self.options["hidden"])
        self.classifiers = nn.ModuleList(DomainClassifier(c, hidden) for c in feature_channels)

    def forward(self, batch: AdaptBatch, strength: float) -> torch.Tensor:
        coefficient = float(self.options["lambda"]) * strength
        losses = []
        for classifier, source, target in zip(self.classifiers, batch.source_features,
                                              batch.target_features):
            losses.append(domain_loss(classifier, reverse_gradient(source.float(), coefficient),
                                      reverse_gradient(target.float(), coefficient)))
        return torch.stack(losses).mean()
