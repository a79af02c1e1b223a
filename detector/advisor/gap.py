"""The domain gap layer by layer, from the BatchNorm statistics a pretrained network stores.

Every BatchNorm layer (torch's `BatchNorm2d` and torchvision's `FrozenBatchNorm2d` alike) keeps
`running_mean` and `running_var`: the per-channel mean and variance of its *input* over the
pretraining set. The pretraining images are not needed to compare a new data set with them: run
the new images through the network in eval mode (each layer then sees what the pretrained
network would feed it), collect the per-channel mean and variance of every BatchNorm input, and
compare the two Gaussians channel by channel. A layer's gap is the mean over its channels.

Distances (DISTANCES, a registry): for one channel with stored N(m_s, v_s) and measured
N(m_d, v_d), both variances plus the layer's eps (so dead channels do not divide by zero):

- `skl`, symmetric KL: KL(d||s) + KL(s||d) = 1/2 (v_d/v_s + v_s/v_d - 2)
  + 1/2 (m_d - m_s)^2 (1/v_d + 1/v_s). Scale-free; 0 for identical Gaussians.
- `w2`, Wasserstein-2 squared in units of the stored variance: ((m_d - m_s)^2
  + (sqrt v_d - sqrt v_s)^2) / v_s.

The network must keep its BatchNorm layers: a copy with BatchNorm folded into the convolutions
(`Detector.for_inference()`) has no statistics left, so the un-fused detector is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.ops import FrozenBatchNorm2d

from detector.errors import ConfigError

DISTANCES: dict[str, Callable] = {}


def register_distance(name: str):
    """Decorator: `fn(mean_d, var_d, mean_s, var_s) -> [C] per-channel distance` under `name`."""

    def decorate(fn: Callable) -> Callable:
        if name in DISTANCES:
            raise ValueError(f"distance {name!r} is already registered")
        DISTANCES[name] = fn
        return fn

    return decorate


@register_distance("skl")
def symmetric_kl(mean_d, var_d, mean_s, var_s):
    squared = (mean_d - mean_s) ** 2
    return 0.5 * (var_d / var_s + var_s / var_d - 2) + 0.5 * squared * (1 / var_d + 1 / var_s)


@register_distance("w2")
def wasserstein2(mean_d, var_d, mean_s, var_s):
    return ((mean_d - mean_s) ** 2 + (var_d.sqrt() - var_s.sqrt()) ** 2) / var_s


def get_distance(name: str) -> Callable:
    if name not in DISTANCES:
        raise ConfigError(f"unknown gap distance {name!r}; valid: {', '.join(DISTANCES)}")
    return DISTANCES[name]


def is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, (_BatchNorm, FrozenBatchNorm2d))


@dataclass
class LayerGap:
    """One BatchNorm layer: its module name, the part it belongs to, channels, and the gap
    (mean over channels of the per-channel distance; `max` the worst channel)."""

    name: str
    part: str
    channels: int
    gap: float
    max: float


class ChannelMoments:
    """Running per-channel sums of x and x^2 over [B,C,H,W] tensors (float64, so a few hundred
    images of 640x640 activations do not lose precision)."""

    def __init__(self):
        self.count = 0
        self.sum: torch.Tensor | None = None
        self.sum_sq: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        total, total_sq = x.sum(dim=dims), (x * x).sum(dim=dims)
        self.count += x.numel() // x.shape[1]
        self.sum = total if self.sum is None else self.sum + total
        self.sum_sq = total_sq if self.sum_sq is None else self.sum_sq + total_sq

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.sum / self.count
        return mean, (self.sum_sq / self.count - mean * mean).clamp_min(0)


def module_parts(detector) -> dict[int, str]:
    """id(module) -> name of the part (detector.parts()) holding it."""
    owner = {}
    for part, module in detector.parts().items():
        for child in module.modules():
            owner.setdefault(id(child), part)
    return owner


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every BatchNorm / FrozenBatchNorm2d with stored statistics, in
    registration order (input to output for the families here)."""
    return [(name, m) for name, m in model.named_modules()
            if is_batchnorm(m) and getattr(m, "running_mean", None) is not None]


def collect_moments(model: nn.Module, batches: Iterable[list[torch.Tensor]],
                    layers: list[tuple[str, nn.Module]]) -> dict[str, ChannelMoments]:
    """Run `model` (eval mode, no grad) on each batch (a list of [C,H,W] images) and return the
    per-channel moments of every listed layer's input."""
    moments = {name: ChannelMoments() for name, _ in layers}
    handles = [module.register_forward_pre_hook(
        lambda _m, args, name=name: moments[name].add(args[0])) for name, module in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return moments


def layer_gaps(layers: list[tuple[str, nn.Module]], moments: dict[str, ChannelMoments],
               owner: dict[int, str], distance: str = "skl") -> list[LayerGap]:
    """The gap of every layer whose input was seen, in layer order."""
    measure = get_distance(distance)
    gaps = []
    for name, module in layers:
        seen = moments[name]
        if seen.count == 0:
            continue  # a branch the eval forward does not take
        mean_d, var_d = seen.mean_var()
        eps = float(getattr(module, "eps", 1e-5))
        mean_s = module.running_mean.detach().to(torch.float64)
        var_s = module.running_var.detach().to(torch.float64)
        per_channel = measure(mean_d, var_d + eps, mean_s, var_s + eps)
        gaps.append(LayerGap(name, owner.get(id(module), "?"), int(per_channel.numel()),
                             float(per_channel.mean()), float(per_channel.max())))
    return gaps


def part_gaps(gaps: list[LayerGap], part_names: list[str]) -> dict[str, float | None]:
    """part -> mean gap of its layers (None: the part has no BatchNorm), in model order."""
    result = {}
    for part in part_names:
        values = [g.gap for g in gaps if g.part == part]
        result[part] = sum(values) / len(values) if values else None
    return result


def input_gap(moments: ChannelMoments, mean: list[float], std: list[float],
              distance: str = "skl") -> float:
    """Gap between the images' per-channel pixel statistics and reference (mean, std) ones,
    e.g. ImageNet's: what is measured for a network that stores no BatchNorm statistics."""
    mean_d, var_d = moments.mean_var()
    mean_s = torch.tensor(mean, dtype=torch.float64)
    var_s = torch.tensor(std, dtype=torch.float64) ** 2
    if mean_s.numel() != mean_d.numel():
        mean_s = mean_s.mean().expand_as(mean_d)
        var_s = var_s.mean().expand_as(mean_d)
    value = float(get_distance(distance)(mean_d, var_d + 1e-6, mean_s, var_s + 1e-6).mean())
    return value if math.isfinite(value) else float("inf")


__all__ = ["DISTANCES", "ChannelMoments", "LayerGap", "batchnorm_layers", "collect_moments",
           "get_distance", "input_gap", "is_batchnorm", "layer_gaps", "module_parts", "part_gaps",
           "register_distance"]
