"""Every family supports every adaptation method through `Detector.features` and the train /
eval forwards: one small arch per family of the registry, on tiny CPU inputs."""

from __future__ import annotations

import pytest
import torch

from detector.adapt.adaptation import AdaptSpec, DomainAdaptation, MethodSpec
from detector.adapt.adversarial import reverse_gradient
from detector.adapt.method import AdaptBatch
from detector.adapt.mmd import MMDAlignment
from detector.adapt.registry import method_names
from detector.data.dataset import collate_detection
from detector.models.registry import build_detector, get_model_entry, list_models
from detector.train.dist import DistContext
from detector.train.freezing import Stage

# The smallest arch of each family and the options that make it tiny.
TINY = {
    "rcnn": ("fasterrcnn_mobilenet_v3_large_320_fpn", {"min_size": 64, "max_size": 64}),
    "yolo": ("yolov8n", {"image_size": 64}),
    "yolov5": ("yolov5n", {"image_size": 64}),
}
SIZE = 64


def test_every_family_of_the_registry_is_covered():
    assert {get_model_entry(arch).family for arch in list_models()} == set(TINY)


@pytest.fixture(scope="module", params=sorted(TINY))
def detector(request):
    arch, options = TINY[request.param]
    torch.manual_seed(0)
    return build_detector(arch, ["a", "b"], **options).train()


def images(count, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(3, SIZE, SIZE, generator=generator) for _ in range(count)]


def test_features_are_levels_with_gradients_into_every_part_but_the_head(detector):
    levels = detector.features(images(2, 0))
    assert levels and all(level.dim() == 4 and level.shape[0] == 2 for level in levels)
    detector.zero_grad()
    sum(level.float().pow(2).mean() for level in levels).backward()
    parts = detector.parts()
    for name in [p for p in parts if p != "head"]:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in parts[name].parameters()), name
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in parts["head"].parameters())


def test_gradient_reversal_flips_the_stem_gradient(detector):
    stem = detector.stem_conv().weight
    gradients = []
    for coefficient in (None, 1.0):
        detector.zero_grad()
        levels = detector.features(images(2, 1))
        if coefficient is not None:
            levels = [reverse_gradient(level, coefficient) for level in levels]
        sum(level.sum() for level in levels).backward()
        gradients.append(stem.grad.clone())
    torch.testing.assert_close(gradients[1], -gradients[0])


def test_mmd_of_identical_feature_batches_is_zero(detector):
    with torch.no_grad():
        levels = detector.features(images(3, 2))
    batch = AdaptBatch(detector, [], [], source_features=levels, target_features=levels)
    assert abs(MMDAlignment(detector, [], {})(batch, 1.0).item()) < 1e-6


class Target(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        image = images(1, 10 + index)[0] * 0.5 + 0.5  # brighter: another domain
        return image, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


def test_a_train_step_with_each_method(detector):
    assert method_names() == ["adversarial", "mmd", "teacher"]
    methods = (MethodSpec("adversarial"), MethodSpec("mmd"),
               MethodSpec("teacher", options={"threshold": 0.0}))
    adaptation = DomainAdaptation(
        detector, AdaptSpec(target=lambda modalities: Target(), methods=methods),
        stages=[Stage(1, tuple(detector.parts()))], batch_size=2, steps_per_epoch=1,
        context=DistContext(), device=torch.device("cpu"), workers=0, seed=0,
        collate_fn=collate_detection)
    source = images(2, 3)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    detector.zero_grad()
    losses = adaptation.losses(source)
    assert set(losses) == {"adapt_adversarial", "adapt_mmd", "adapt_teacher"}
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values()), losses
    total = sum(detector(source, targets).values()) + sum(losses.values())
    total.backward()
    classifiers = adaptation.methods[0].classifiers
    assert all(p.grad is not None for p in classifiers.parameters())
    groups = adaptation.param_groups(0.01, 1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(classifiers.parameters()))
    assert detector.training  # the probe and the teacher leave the student in train mode
