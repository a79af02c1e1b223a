"""Multi-kernel maximum mean discrepancy between source and target features (DAN, Long et al.
2015): each level is average-pooled to one [C] vector per image, and the squared MMD between the
source and target vectors is computed with the mean of Gaussian kernels whose bandwidths are the
mean pairwise squared distance times 2^k (k = -2..2). The biased estimate is used: it is exactly
0 when both batches are the same, and never depends on the batch order.
"""

from __future__ import annotations

import torch

from detector.adapt.method import AdaptBatch, AlignmentMethod
from detector.adapt.registry import register_method

BANDWIDTH_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def mmd(source: torch.Tensor, target: torch.Tensor,
        multipliers: tuple[float, ...] = BANDWIDTH_MULTIPLIERS) -> torch.Tensor:
    """Squared multi-kernel MMD (biased estimate) between samples source [N,D] and target [M,D].

    The base bandwidth is the mean squared distance between distinct samples of both sets
    (detached: it sets the scale, it is not something to optimise)."""
    joint = torch.cat([source, target]).float()
    distances = torch.cdist(joint, joint).pow(2)
    count = joint.shape[0]
    bandwidth = (distances.detach().sum() / max(1, count * count - count)).clamp_min(1e-8)
    kernel = sum(torch.exp(-distances / (bandwidth * m)) for m in multipliers) / len(multipliers)
    n = source.shape[0]
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


@register_method("mmd")
class MMDAlignment(AlignmentMethod):
    """No options: the mean over levels of the MMD of the pooled features."""

    OPTIONS: dict = {}

    def forward(self, batch: AdaptBatch, strength: float) -> torch.Tensor:
        terms = [mmd(source.mean(dim=(2, 3)), target.mean(dim=(2, 3)))
                 for source, target in zip(batch.source_features, batch.target_features)]
        return strength * torch.stack(terms).mean()

