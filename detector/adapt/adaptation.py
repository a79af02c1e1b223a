"""Domain adaptation inside a training run: what `fit` sets up once and calls once per step.

    spec = AdaptSpec(target=lambda modalities: target_dataset,
                     methods=[MethodSpec("adversarial", weight=0.1, ramp_epochs=2), MethodSpec("mmd")])
    fit(detector, train_data, val_data, ..., adapt=spec)

`DomainAdaptation` draws one batch of target-domain images per step from its own loader (the
same transforms, collate and workers as the training data; cycled, each pass reshuffled; split
across torchrun processes like the training batches), runs `detector.features` once on the
source and target images together when a method needs features, and returns each method's
weighted loss, named `adapt_<method>`. A method is off (loss 0) before its `start_epoch`; from
there its strength ramps from 0 to 1 over `ramp_epochs` with DANN's 2 / (1 + exp(-10 p)) - 1.
Methods with parameters (domain classifiers) are trained by the run's optimizer
(`param_groups`), wrapped in DDP under torchrun, and saved and resumed with the run
(`state_dict`). Target labels, if the source has any, are never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from detector.adapt.registry import method_class
from detector.errors import ConfigError
from detector.train.dist import DistContext, make_sampler, wrap_model
from detector.train.freezing import Stage, part_matches


@dataclass(frozen=True)
class MethodSpec:
    """One method: its registered `name`, loss `weight`, schedule (epochs, fractional allowed)
    and method-specific `options`."""

    name: str
    weight: float = 1.0
    start_epoch: float = 0.0
    ramp_epochs: float = 0.0
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptSpec:
    """`target(modalities)` builds the target-domain dataset ((image [C,H,W], target) samples
    whose targets are ignored) for the detector's modalities; `batch_size`: target images per
    step over all processes (None: the training batch size)."""

    target: Callable[[list[str]], Dataset]
    methods: tuple[MethodSpec, ...]
    batch_size: int | None = None


def ramp(epoch: float, start: float, length: float) -> float:
    """0 before `start`; DANN's sigmoid ramp from 0 to 1 over `length` epochs; 1 after."""
    if epoch < start:
        return 0.0
    if length <= 0:
        return 1.0
    progress = min(1.0, (epoch - start) / length)
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def touched_parts(method: type, part_names: list[str]) -> list[str]:
    """The parts a method's loss reaches: all but the head for feature alignment, else all."""
    return [p for p in part_names if p != "head"] if method.uses_features else list(part_names)


def check_stages(methods: tuple[MethodSpec, ...], part_names: list[str], stages: list[Stage]) -> None:
    """ConfigError when no stage trains any part a method reaches (it could change nothing)."""
    trained = [p for p in part_names if any(part_matches(p, n) for s in stages for n in s.train)]
    for index, spec in enumerate(methods):
        touched = touched_parts(method_class(spec.name), part_names)
        if not set(touched) & set(trained):
            raise ConfigError(
                f"train.adapt.methods.{index} ({spec.name}): its loss reaches "
                f"{', '.join(touched)}, but the run trains only {', '.join(trained)}; train "
                "more parts (e.g. train.preset finetune_top or finetune_all) or drop the method")


def _feature_channels(detector: nn.Module, channels: int, device: torch.device) -> list[int]:
    """Channels of each `features` level, from one small image in eval mode (no statistics
    change)."""
    was_training = detector.training
    detector.eval()
    try:
        with torch.no_grad():
            levels = detector.features([torch.zeros(channels, 64, 64, device=device)])
    finally:
        detector.train(was_training)
    return [int(level.shape[1]) for level in levels]


def _where(index: int, spec: MethodSpec) -> str:
    return f"train.adapt.methods.{index} ({spec.name})"


class DomainAdaptation:
    """Set up by `fit` (see the module docstring); `losses(source_images)` once per step."""

    def __init__(self, detector: nn.Module, spec: AdaptSpec, *, stages: list[Stage],
                 batch_size: int, steps_per_epoch: int, context: DistContext,
                 device: torch.device, workers: int, seed: int, collate_fn):
        if not spec.methods:
            raise ConfigError("train.adapt.methods: give at least one method")
        part_names = list(detector.parts())
        check_stages(spec.methods, part_names, stages)
        target = spec.target(list(detector.modalities))
        if len(target) == 0:
            raise ConfigError("train.adapt.target: no target-domain images to adapt to")
        channels = int(target[0][0].shape[0])
        if channels != detector.in_channels:
            raise ConfigError(
                f"train.adapt.target: its images have {channels} channels but the model takes "
                f"{detector.in_channels} ({', '.join(detector.modalities)}); give the target "
                "the training data's modalities (train.adapt.target.modalities)")
        self.detector, self.device, self.specs = detector, device, spec.methods
        feature_channels = _feature_channels(detector, channels, device)
        self.methods = nn.ModuleList()
        for index, method in enumerate(spec.methods):
            try:
                built = method_class(method.name)(detector, feature_channels, dict(method.options))
            except ConfigError as e:
                raise ConfigError(f"{_where(index, method)}: {e}") from e
            self.methods.append(built)
        self.methods.to(device)
        # Only modules with trained parameters go through DDP (it refuses the others).
        self.calls = [wrap_model(m, context, device) if self._trainable(m) else m
                      for m in self.methods]
        per_process = max(1, (spec.batch_size or batch_size) // context.world_size)
        self.sampler = make_sampler(target, context, shuffle=True, seed=seed + 7919)
        self.loader = DataLoader(target, batch_size=per_process, sampler=self.sampler,
                                 num_workers=workers, collate_fn=collate_fn,
                                 pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.step, self.target_epoch, self._iterator = 0, 0, None
        names = [m.name for m in spec.methods]
        self.keys = [f"adapt_{n}" if names.count(n) == 1 else f"adapt_{i}_{n}"
                     for i, n in enumerate(names)]

    @staticmethod
    def _trainable(module: nn.Module) -> bool:
        return any(p.requires_grad for p in module.parameters())

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups of the methods' own parameters (domain classifiers), at the run's
        lr, or at the method's own `lr` option where it has one (the schedule applies to them
        too)."""
        groups = []
        for method in self.methods:
            scale = float(method.options.get("lr", lr)) / lr
            params = [p for p in method.parameters() if p.requires_grad]
            decay, no_decay = [p for p in params if p.ndim > 1], [p for p in params if p.ndim <= 1]
            groups += [{"params": group, "lr": lr * scale, "lr_scale": scale, "weight_decay": value,
                        "part": "adapt"}
                       for group, value in ((decay, weight_decay), (no_decay, 0.0)) if group]
        return groups

    def _next_target(self) -> list[torch.Tensor]:
        while True:
            if self._iterator is None:
                self.sampler.set_epoch(self.target_epoch)
                self._iterator = iter(self.loader)
            try:
                images, _ = next(self._iterator)
            except StopIteration:
                self._iterator, self.target_epoch = None, self.target_epoch + 1
                continue
            return [image.to(self.device, non_blocking=True) for image in images]

    def losses(self, source_images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """{adapt_<method>: weight * loss} for this step (0 for methods not started yet)."""
        from detector.adapt.method import AdaptBatch

        epoch = self.step / self.steps_per_epoch
        self.step += 1
        strengths = [ramp(epoch, s.start_epoch, s.ramp_epochs) for s in self.specs]
        active = [i for i, s in enumerate(self.specs) if epoch >= s.start_epoch]
        zero = torch.zeros((), device=self.device)
        if not active:
            return dict.fromkeys(self.keys, zero)
        batch = AdaptBatch(self.detector, list(source_images), self._next_target())
        if any(self.methods[i].uses_features for i in active):
            # One pass over both domains: the network sees them in one batch, as it will.
            levels = self.detector.features(batch.source_images + batch.target_images)
            count = len(batch.source_images)
            batch.source_features = [level[:count] for level in levels]
            batch.target_features = [level[count:] for level in levels]
        return {key: spec.weight * self.calls[i](batch, strengths[i]) if i in active else zero
                for i, (key, spec) in enumerate(zip(self.keys, self.specs))}

    def state_dict(self) -> dict:
        return {"step": self.step, "target_epoch": self.target_epoch,
                "methods": self.methods.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        # A resumed run starts a fresh pass over the target images.
        self.target_epoch = int(state["target_epoch"]) + 1
        self.methods.load_state_dict(state["methods"])
