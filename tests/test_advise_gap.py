"""The BatchNorm-statistics gap (detector/advisor/gap.py, profile.py): ~0 on inputs drawn from
the statistics a network stored, growing with a synthetic shift, the same for
FrozenBatchNorm2d, and the pixel statistics as the only measure of a network without BatchNorm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from detector.advisor.gap import (
    DISTANCES, ChannelMoments, batchnorm_layers, collect_moments, get_distance, layer_gaps,
    module_parts, part_gaps,
)
from detector.advisor.profile import Sample, measure_profiles
from detector.errors import ConfigError
from tests.toy_detector import ToyDetector

MEAN = torch.tensor([0.2, -0.5, 1.0])
STD = torch.tensor([0.5, 2.0, 0.3])


def _inputs(seed: int, shift: float = 0.0, batches: int = 8) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 3, 12, 12, generator=generator) * STD[None, :, None, None]
            + MEAN[None, :, None, None] + shift for _ in range(batches)]


def _network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6),
                        nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6))
    # momentum=None: the running stats become the plain average over every batch seen, i.e.
    # the network's "pretraining set" statistics
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    net.train()
    with torch.no_grad():
        for batch in _inputs(seed=1, batches=40):
            net(batch)
    return net.eval()


def _gaps(net, batches, distance="skl"):
    layers = batchnorm_layers(net)
    moments = collect_moments(net, batches, layers)
    return layer_gaps(layers, moments, {}, distance)


@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_gap_is_near_zero_on_inputs_from_the_stored_statistics(distance):
    gaps = _gaps(_network(), _inputs(seed=2), distance)
    assert len(gaps) == 3
    for layer in gaps:
        assert layer.gap < 0.01, layer


@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_gap_grows_monotonically_with_a_shift(distance):
    net = _network()
    means = [float(np.mean([g.gap for g in _gaps(net, _inputs(seed=2, shift=s), distance)]))
             for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(means, means[1:])), means
    first_layer = [_gaps(net, _inputs(seed=2, shift=s), distance)[0].gap for s in (0.0, 0.5, 1.0)]
    assert all(a < b for a, b in zip(first_layer, first_layer[1:]))


def test_distances_match_their_closed_forms():
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    # a mean shift of one standard deviation: skl = w2 = 1
    assert float(get_distance("skl")(one, one, zero, one)) == pytest.approx(1.0)
    assert float(get_distance("w2")(one, one, zero, one)) == pytest.approx(1.0)
    # variance 4 vs 1: skl = (4 + 1/4 - 2) / 2, w2 = (2 - 1)^2
    assert float(get_distance("skl")(zero, 4 * one, zero, one)) == pytest.approx(1.125)
    assert float(get_distance("w2")(zero, 4 * one, zero, one)) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="unknown gap distance 'kl'; valid: skl, w2"):
        get_distance("kl")


def test_frozen_batchnorm_gives_the_same_gap():
    net = _network()
    frozen = _network()
    for index, module in enumerate(frozen):
        if isinstance(module, nn.BatchNorm2d):
            replacement = FrozenBatchNorm2d(module.num_features, eps=module.eps)
            replacement.load_state_dict({k: v for k, v in module.state_dict().items()
                                         if k != "num_batches_tracked"})
            frozen[index] = replacement
    shifted = _inputs(seed=3, shift=0.7)
    plain = [g.gap for g in _gaps(net, shifted)]
    kept = [g.gap for g in _gaps(frozen, shifted)]
    assert len(batchnorm_layers(frozen)) == 3
    assert kept == pytest.approx(plain, rel=1e-6)
    assert min(plain) > 0.05


def test_channel_moments_match_numpy():
    x = torch.randn(4, 3, 5, 7, dtype=torch.float64) * 3 + 1
    moments = ChannelMoments()
    moments.add(x[:2])
    moments.add(x[2:])
    mean, var = moments.mean_var()
    flat = x.permute(1, 0, 2, 3).reshape(3, -1).numpy()
    np.testing.assert_allclose(mean.numpy(), flat.mean(axis=1))
    np.testing.assert_allclose(var.numpy(), flat.var(axis=1))


def _toy_with_stats(seed: int = 0, batchnorm: bool = True) -> ToyDetector:
    torch.manual_seed(seed)
    toy = ToyDetector(["a", "b"])
    if not batchnorm:
        toy.stem[1] = nn.Identity()
        toy.stage0[1] = nn.Identity()
        return toy.eval()
    for module in toy.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    toy.train()
    with torch.no_grad():  # its "pretraining": uniform 0..1 images
        for _ in range(20):
            toy._outputs(list(torch.rand(8, 3, 32, 32)))
    return toy.eval()


def _sample(images: list[np.ndarray], modality: str = "rgb") -> Sample:
    return Sample(list(range(len(images))), [{modality: image} for image in images])


def test_profile_of_a_detector_is_per_part_and_grows_for_a_darker_domain():
    toy = _toy_with_stats()
    rng = np.random.default_rng(0)
    same = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(16)]
    dark = [(rng.random((32, 32, 3)) * 60).astype(np.uint8) for _ in range(16)]
    near = measure_profiles(toy, _sample(same), ["rgb"])[0]
    far = measure_profiles(toy, _sample(dark), ["rgb"])[0]
    assert [layer.part for layer in near.layers] == ["stem", "backbone.0"]
    assert set(near.parts) == {"stem", "backbone.0", "backbone.1", "neck", "head"}
    assert near.parts["neck"] is None and near.parts["head"] is None  # no BatchNorm there
    assert near.score < 0.02
    assert far.score > 10 * near.score and far.parts["stem"] > 0.1


def test_a_detector_without_batchnorm_is_measured_at_the_input():
    toy = _toy_with_stats(batchnorm=False)
    rng = np.random.default_rng(0)
    images = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(8)]
    profile = measure_profiles(toy, _sample(images), ["rgb"])[0]
    assert not profile.has_batchnorm and profile.layers == []
    assert all(gap is None for gap in profile.parts.values())
    assert profile.input_reference == "ImageNet pixel statistics"
    assert math.isfinite(profile.input_gap) and profile.score == profile.input_gap


def test_module_parts_and_part_gaps():
    toy = _toy_with_stats()
    owner = module_parts(toy)
    assert owner[id(toy.stem[1])] == "stem" and owner[id(toy.stage0[1])] == "backbone.0"
    layers = batchnorm_layers(toy)
    images = list(torch.rand(4, 3, 32, 32))
    gaps = layer_gaps(layers, collect_moments(toy, [images], layers), owner)
    summary = part_gaps(gaps, list(toy.parts()))
    assert summary["stem"] == pytest.approx(gaps[0].gap)
    assert summary["head"] is None
