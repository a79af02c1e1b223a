"""The gap profile of a data set under one pretrained model: sample images, feed them, measure.

A few dozen images (seeded sample) are decoded once. Each is resized with OpenCV so its long side
is the size the detector evaluates at (what it would do itself, only faster) and handed to the
detector's own eval forward, so every family preprocesses its input as it always does; hooks on
the BatchNorm layers collect the statistics (detector/advisor/gap.py).

How the data meets the model: a 3-channel RGB model sees each modality on its own, a 1-channel
one replicated to 3 (which is exactly what the `sum` stem init computes), so an RGB + LWIR set
gets one profile per modality. A model whose stem already takes the data's channel count sees
the stacked channels. The input statistics are measured too, against the model's own input
normalisation where it has one, else ImageNet's: the only thing measurable for a network without
any BatchNorm layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from detector.advisor.channels import PixelRange, data_channels, stem_init_for
from detector.advisor.gap import (
    ChannelMoments, LayerGap, batchnorm_layers, collect_moments, input_gap, layer_gaps,
    module_parts, part_gaps,
)
from detector.data.images import load_modality, to_float
from detector.data.records import DatasetRecords

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BATCH = 8


@dataclass
class GapProfile:
    """One fed view of the data ('rgb', 'lwir', or 'rgb+lwir' stacked) under one model.

    - layers: per BatchNorm layer gaps, input to output (empty: the model has no BatchNorm)
    - parts: part -> mean gap of its layers (None: no BatchNorm in the part)
    - input_gap: pixel statistics vs `input_reference`
    - score: the mean layer gap (the input gap when there are no layers)
    """

    view: str
    layers: list[LayerGap]
    parts: dict[str, float | None]
    input_gap: float
    input_reference: str
    distance: str
    images: int
    seconds: float = 0.0

    @property
    def has_batchnorm(self) -> bool:
        return bool(self.layers)

    @property
    def score(self) -> float:
        if not self.layers:
            return self.input_gap
        return float(np.mean([layer.gap for layer in self.layers]))

    def part_gap(self, names: list[str]) -> float | None:
        """Mean gap over the listed parts that have BatchNorm (None: none of them has)."""
        values = [self.parts[n] for n in names if self.parts.get(n) is not None]
        return float(np.mean(values)) if values else None


@dataclass
class Sample:
    """Decoded sample: per record index, per modality, the [H,W,C] stored array (uint8/16)."""

    indices: list[int]
    images: list[dict[str, np.ndarray]] = field(default_factory=list)
    ranges: dict[str, PixelRange] = field(default_factory=dict)


def sample_images(records: DatasetRecords, max_images: int, seed: int = 0) -> Sample:
    """Decode up to `max_images` records (a seeded random choice, in record order)."""
    count = min(max_images, len(records.images))
    rng = np.random.default_rng(seed)
    indices = sorted(rng.choice(len(records.images), count, replace=False).tolist())
    sample = Sample(indices, ranges={m: PixelRange() for m in records.modalities})
    for index in indices:
        record = records.images[index]
        loaded = {}
        for modality in records.modalities:
            image = load_modality(record.paths[modality], modality)
            sample.ranges[modality].add(image)
            loaded[modality] = image
        sample.images.append(loaded)
    return sample


def _resized(image: np.ndarray, long_side: int | None) -> np.ndarray:
    height, width = image.shape[:2]
    if long_side is None or max(height, width) == long_side:
        return image
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out[:, :, None] if out.ndim == 2 else out


def _views(modalities: list[str], model_channels: int, where: str) -> list[list[str]]:
    """The modality groups fed to the model: one each for an RGB model, all stacked when the
    model already takes the data's channels."""
    channels = data_channels(modalities)
    if model_channels == channels and (len(modalities) == 1 or model_channels != 3):
        return [list(modalities)]
    stem_init_for(model_channels, channels, where)  # raises when no stem init can bridge them
    return [[m] for m in modalities]


def _tensor(arrays: list[np.ndarray], model_channels: int, long_side: int | None) -> torch.Tensor:
    stacked = np.concatenate([to_float(_resized(a, long_side)) for a in arrays], axis=2)
    if stacked.shape[2] == 1 and model_channels == 3:
        stacked = np.repeat(stacked, 3, axis=2)  # what the `sum` stem init computes exactly
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(2, 0, 1)))


def measure_profiles(detector, sample: Sample, modalities: list[str], distance: str = "skl",
                     where: str = "--model") -> list[GapProfile]:
    """One GapProfile per view of the sampled images under `detector` (not modified)."""
    model_channels = int(detector.in_channels)
    long_side = detector.eval_long_side()
    layers = batchnorm_layers(detector)
    owner = module_parts(detector)
    part_names = list(detector.parts())
    stats = detector.input_stats()
    reference = "the model's input normalisation" if stats else "ImageNet pixel statistics"
    mean, std = stats if stats else (IMAGENET_MEAN, IMAGENET_STD)
    profiles = []
    for view in _views(modalities, model_channels, where):
        start = time.perf_counter()
        pixels = ChannelMoments()

        def batches():
            for begin in range(0, len(sample.images), BATCH):
                batch = [_tensor([images[m] for m in view], model_channels, long_side)
                         for images in sample.images[begin:begin + BATCH]]
                for image in batch:
                    pixels.add(image[None])
                yield batch

        if layers:
            moments = collect_moments(detector, batches(), layers)
            gaps = layer_gaps(layers, moments, owner, distance)
        else:
            for _ in batches():  # only the pixel statistics: there is nothing stored to compare
                pass
            gaps = []
        profiles.append(GapProfile(
            view="+".join(view), layers=gaps, parts=part_gaps(gaps, part_names),
            input_gap=input_gap(pixels, mean, std, distance), input_reference=reference,
            distance=distance, images=len(sample.images),
            seconds=time.perf_counter() - start))
    return profiles


__all__ = ["GapProfile", "Sample", "measure_profiles", "sample_images"]
