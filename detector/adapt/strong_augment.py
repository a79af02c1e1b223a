"""The strong view of a target image for the mean teacher's student: photometric changes and
cut-out patches that leave every object where it is, so the teacher's boxes (predicted on the
weak view) stay true. Works on any channel count (RGB, LWIR, RGB+LWIR).

Per image, each with its own draw from torch's generator: brightness and contrast jitter
(p 0.8), Gaussian blur (p 0.5), Gaussian noise (p 0.5), then 1 to 3 cut-out rectangles of 2-10 %
of the image each, filled with grey (p 0.7) - after Unbiased Teacher's strong augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    x = image[None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"),
                 kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"),
                 kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return x[0]


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def strong_augment(image: torch.Tensor) -> torch.Tensor:
    """[C,H,W] float 0..1 -> a new [C,H,W] float 0..1, geometry unchanged."""
    out = image.clone()
    if torch.rand(()) < 0.8:
        mean = out.mean(dim=(1, 2), keepdim=True)
        out = (out - mean) * _uniform(0.6, 1.4) + mean + _uniform(-0.2, 0.2)
    if torch.rand(()) < 0.5:
        out = _blur(out, _uniform(0.3, 1.5))
    if torch.rand(()) < 0.5:
        out = out + torch.randn_like(out) * _uniform(0.01, 0.05)
    out = out.clamp(0, 1)
    if torch.rand(()) < 0.7:
        height, width = out.shape[-2:]
        for _ in range(int(torch.randint(1, 4, ()))):
            area = _uniform(0.02, 0.10) * height * width
            aspect = _uniform(0.5, 2.0)
            h = max(1, min(height, round((area * aspect) ** 0.5)))
            w = max(1, min(width, round((area / aspect) ** 0.5)))
            top = int(torch.randint(0, height - h + 1, ()))
            left = int(torch.randint(0, width - w + 1, ()))
            out[:, top:top + h, left:left + w] = 0.5
    return out
