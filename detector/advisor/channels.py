"""Channels and bit depth of the data, and the stem init that keeps the pretrained function.

The data's channels are the sum over its modalities (rgb 3, lwir 1). A 3-channel RGB model meets:
- 3 channels (RGB): nothing to adapt;
- fewer (1 = thermal): `sum` (the RGB filters summed: a grey image gives the RGB model's output
  on that grey image, see detector/models/surgery.py);
- more (4 = RGB + thermal): `zero` (RGB filters kept, the new channels start at zero: exactly the
  RGB model until training moves them).
A model that is not RGB can only take data with its own channel count: surgery starts from RGB.

Bit depth is read from a sample of decoded images: 8-bit files are scaled /255, 16-bit /65535
(detector/data/images.py). A 16-bit thermal file that fills only a thin slice of 0..65535 reaches
the model as an almost constant image; the report says how much of the range is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.data.images import modality_channels
from detector.errors import ConfigError

# Below this share of the full scale between the 1st and 99th percentile, a 16-bit image is
# nearly flat once divided by 65535.
NARROW_RANGE = 0.125


@dataclass
class ChannelInfo:
    """modalities, channels in total, and per modality the bit depth seen and the share of the
    full scale between the 1st and 99th percentile of the sampled pixels."""

    modalities: list[str]
    channels: int
    bits: dict[str, int] = field(default_factory=dict)
    range_used: dict[str, float] = field(default_factory=dict)

    def notes(self) -> list[str]:
        notes = []
        for modality, bits in self.bits.items():
            used = self.range_used.get(modality, 1.0)
            if bits == 16 and used < NARROW_RANGE:
                notes.append(f"{modality}: 16-bit pixels use {used:.1%} of 0..65535 (1st-99th "
                             "percentile): divided by 65535 they are nearly flat; stretch them "
                             "when converting the data")
        return notes


class PixelRange:
    """Accumulates bit depth and 1st/99th percentiles over sampled images of one modality."""

    def __init__(self):
        self.bits = 8
        self.low: list[float] = []
        self.high: list[float] = []

    def add(self, image: np.ndarray) -> None:
        """image: [H,W,C] uint8 or uint16 as loaded by detector.data.images.load_image."""
        full = 65535.0 if image.dtype == np.uint16 else 255.0
        self.bits = max(self.bits, 16 if image.dtype == np.uint16 else 8)
        low, high = np.percentile(image[::4, ::4], (1, 99))
        self.low.append(low / full)
        self.high.append(high / full)

    def used(self) -> float:
        return float(np.median(self.high) - np.median(self.low)) if self.low else 1.0


def data_channels(modalities: list[str]) -> int:
    return sum(modality_channels(m) for m in modalities)


def stem_init_for(model_channels: int, data_channels: int, where: str) -> str | None:
    """The stem init preserving the model's function (None: the stem fits as it is).

    Raises ConfigError (naming `where`) when the model is not RGB and the counts differ."""
    if model_channels == data_channels:
        return None
    if model_channels != 3:
        raise ConfigError(f"{where}: the model takes {model_channels} channels and the data has "
                          f"{data_channels}; a stem can only be adapted from a 3-channel RGB model")
    return "sum" if data_channels < 3 else "zero"


def stem_reason(init: str | None, data_channels: int) -> str:
    if init is None:
        return "the stem fits the data's channels"
    if init == "sum":
        return (f"{data_channels} channel(s) into an RGB stem: `sum` gives the RGB model's output "
                "on the grey image")
    return (f"{data_channels} channels into an RGB stem: `zero` keeps the RGB filters and starts "
            "the extra channels at zero (the RGB model exactly, until training)")


__all__ = ["ChannelInfo", "PixelRange", "data_channels", "stem_init_for", "stem_reason"]
