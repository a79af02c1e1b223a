"""Mean teacher on the target domain (after Unbiased Teacher, Liu et al. 2021, and Adaptive
Teacher, Li et al. 2022): an exponential moving average of the detector (the teacher) predicts
boxes on the weak view of each target image (the training transforms); predictions scoring at
least the class's threshold become pseudo-labels, and the detector (the student) learns them on
a strong view of the same images (detector/adapt/strong_augment.py), with its own detection loss.

The teacher starts as a copy of the student at the method's first step (after `start_epoch`, the
burn-in on source labels) and then follows it: teacher = decay * teacher + (1 - decay) * student
before each step. It is the Detector contract's eval mode, so every family works the same way.
Adversarial alignment beside it is another entry in the methods list.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from detector.adapt.method import AdaptBatch, AlignmentMethod
from detector.adapt.registry import register_method
from detector.adapt.strong_augment import strong_augment
from detector.errors import ConfigError


def class_thresholds(class_names: list[str], threshold, where: str) -> torch.Tensor:
    """[K] score thresholds from one number or {class name: number} (classes left out of the
    mapping get its 'default' entry, else 0.7)."""
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        return torch.full((len(class_names),), float(threshold))
    if not hasattr(threshold, "items"):
        raise ConfigError(f"{where}: expected a number or {{class: number}}, got "
                          f"{threshold!r}")
    values = dict(threshold)
    default = float(values.pop("default", 0.7))
    unknown = [name for name in values if name not in class_names]
    if unknown:
        raise ConfigError(f"{where}: {unknown} are not classes of the model "
                          f"({', '.join(class_names)})")
    return torch.tensor([float(values.get(name, default)) for name in class_names])


@torch.no_grad()
def pseudo_labels(teacher: nn.Module, images: list[torch.Tensor],
                  thresholds: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """The teacher's detections on `images` scoring at least thresholds[label]: per image
    {"boxes": [M,4] float32 xyxy pixels of the image, "labels": [M] int64}."""
    teacher.eval()
    results = []
    for found in teacher(images):
        limit = thresholds.to(found["scores"].device)[found["labels"]]
        keep = found["scores"] >= limit
        results.append({"boxes": found["boxes"][keep].float(), "labels": found["labels"][keep]})
    return results


@register_method("teacher")
class MeanTeacher(AlignmentMethod):
    """Options: threshold (0.7, or {class: score, default: score}), decay (0.999)."""

    OPTIONS = {"threshold": 0.7, "decay": 0.999}
    uses_features = False

    def __init__(self, detector: nn.Module, feature_channels: list[int], options: dict):
        super().__init__(detector, feature_channels, options)
        self.register_buffer("thresholds", class_thresholds(
            list(detector.class_names), self.options["threshold"], "options.threshold"))
        self.decay = float(self.options["decay"])
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"options.decay: expected a number in [0, 1), got {self.decay}")
        self.teacher = copy.deepcopy(detector).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def follow(self, student: nn.Module) -> None:
        """Move the teacher towards the student (a copy on the first call)."""
        decay = self.decay if int(self.updates) > 0 else 0.0
        source = student.state_dict()
        for name, value in self.teacher.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(source[name].detach().to(value.dtype), 1.0 - decay)
            else:
                value.copy_(source[name])
        self.updates += 1

    def forward(self, batch: AdaptBatch, strength: float) -> torch.Tensor:
        self.follow(batch.detector)
        targets = pseudo_labels(self.teacher, batch.target_images, self.thresholds)
        strong = [strong_augment(image) for image in batch.target_images]
        losses = batch.detector(strong, targets)
        return strength * sum(value.float() for value in losses.values())
