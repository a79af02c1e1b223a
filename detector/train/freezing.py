"""Staged freezing, per-part learning rates, and BatchNorm of frozen parts.

Every Detector names its parts in input-to-output order: 'stem', 'backbone.0' ... 'backbone.N',
'neck', 'head'. A stage says which parts train and how their learning rates scale:

    stages:
      - {epochs: 3, train: [head]}
      - {epochs: 9, train: [head, neck, backbone.3, backbone.4], lr_mult: {backbone: 0.1}}

A name matches a part when it is the part's name or a dotted prefix of it: `backbone` matches
`backbone.0`, `backbone.1`, ...; `backbone.1` matches only `backbone.1`. In `lr_mult` the longest
matching name wins. Layer-wise decay multiplies a part's lr by `layer_decay ** depth`, depth 0 at
the head and one more per part towards the stem.

BatchNorm in a frozen part stays in eval mode even after `model.train()`: its running statistics
were estimated on the pretraining data and a frozen part must not drift (nor should a few small
batches of new data overwrite them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from detector.errors import ConfigError

PRESETS = ("feature_extraction", "finetune_top", "finetune_all")


@dataclass(frozen=True)
class Stage:
    """`epochs` epochs training the parts matched by `train`, lr scaled by `lr_mult`."""

    epochs: int
    train: tuple[str, ...]
    lr_mult: dict[str, float] = field(default_factory=dict)


def part_matches(part: str, name: str) -> bool:
    return part == name or part.startswith(name + ".")


def match_parts(part_names: list[str], names: list[str], where: str = "train") -> list[str]:
    """The parts (in model order) matched by `names`; a name matching nothing raises."""
    for name in names:
        if not any(part_matches(part, name) for part in part_names):
            raise ConfigError(
                f"{where}: '{name}' matches no part of this model; its parts are "
                f"{', '.join(part_names)}"
            )
    return [part for part in part_names if any(part_matches(part, name) for name in names)]


def preset_stages(preset: str, epochs: int, part_names: list[str]) -> list[Stage]:
    """One stage of `epochs` epochs for a named strategy:
    feature_extraction (head only), finetune_top (head, neck, last backbone stage),
    finetune_all (every part, stem included)."""
    if preset == "feature_extraction":
        train = ["head"]
    elif preset == "finetune_top":
        backbone = [part for part in part_names if part.startswith("backbone.")]
        train = ["head", "neck"] + backbone[-1:]
    elif preset == "finetune_all":
        train = list(part_names)
    else:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return [Stage(epochs, tuple(part for part in train if part in part_names))]


def resolve_stages(part_names: list[str], *, epochs: int | None = None,
                   stages: list[dict] | list[Stage] | None = None, preset: str | None = None,
                   lr_mult: dict[str, float] | None = None) -> list[Stage]:
    """The run's stages, checked against the model's parts.

    `stages` (dicts or Stage), else `preset` for `epochs` epochs, else finetune_all.
    `lr_mult` applies to every stage under each stage's own lr_mult.
    """
    if stages:
        resolved = [s if isinstance(s, Stage) else Stage(s["epochs"], tuple(s["train"]),
                                                          dict(s.get("lr_mult") or {}))
                    for s in stages]
    else:
        if epochs is None:
            raise ConfigError("train: give epochs (with a preset) or stages")
        resolved = preset_stages(preset or "finetune_all", epochs, part_names)
    result = []
    for index, stage in enumerate(resolved):
        match_parts(part_names, list(stage.train), f"train.stages.{index}.train")
        merged = {**(lr_mult or {}), **stage.lr_mult}
        match_parts(part_names, list(merged), f"train.stages.{index}.lr_mult")
        result.append(Stage(stage.epochs, tuple(stage.train), merged))
    return result


def stage_at(stages: list[Stage], epoch: int) -> tuple[int, Stage]:
    """(index, stage) that 0-based `epoch` belongs to."""
    end = 0
    for index, stage in enumerate(stages):
        end += stage.epochs
        if epoch < end:
            return index, stage
    raise ValueError(f"epoch {epoch} is past the last stage (the stages last {end} epochs)")


def _keep_frozen_batchnorm_in_eval(module: nn.Module, args) -> None:
    # Runs before every forward: model.train() may have switched the module back on.
    if module.frozen_by_stage:
        module.train(False)


def apply_stage(detector: nn.Module, stage: Stage) -> list[str]:
    """Make the parts `stage` trains trainable and freeze the rest (requires_grad), and keep
    BatchNorm of frozen parts in eval mode. Returns the trained part names."""
    parts = detector.parts()
    trained = match_parts(list(parts), list(stage.train))
    covered = set()
    for name, module in parts.items():
        is_trained = name in trained
        for parameter in module.parameters():
            parameter.requires_grad_(is_trained)
            covered.add(id(parameter))
        for child in module.modules():
            if isinstance(child, _BatchNorm):
                if not hasattr(child, "frozen_by_stage"):
                    child.register_forward_pre_hook(_keep_frozen_batchnorm_in_eval)
                child.frozen_by_stage = not is_trained
                if not is_trained:
                    child.train(False)
    outside = [n for n, p in detector.named_parameters() if id(p) not in covered]
    if outside:
        # The Detector contract puts every parameter in exactly one part.
        raise ValueError(f"{type(detector).__name__}: parameters outside parts(): {outside[:5]}")
    return trained


def lr_scale(part: str, part_names: list[str], lr_mult: dict[str, float],
             layer_decay: float | None = None) -> float:
    """The lr multiplier of `part`: the longest matching `lr_mult` entry, times
    layer_decay ** (distance from the head in `part_names` order)."""
    scale = 1.0
    matches = [name for name in lr_mult if part_matches(part, name)]
    if matches:
        scale = float(lr_mult[max(matches, key=len)])
    if layer_decay is not None:
        depth = len(part_names) - 1 - part_names.index(part)
        scale *= layer_decay ** depth
    return scale


def param_groups(detector: nn.Module, stage: Stage, base_lr: float, weight_decay: float,
                 layer_decay: float | None = None) -> list[dict]:
    """Optimizer parameter groups for the trained parts of `stage` (call `apply_stage` first).

    Up to three groups per part: weights with `weight_decay`; norm parameters and biases (1-d)
    without, since decaying them only pulls activations towards zero, the biases apart and
    marked `bias` (train/schedule.py can warm them up on their own). Each group carries 'part'
    and 'lr_scale' (lr = base_lr * lr_scale * schedule factor).
    """
    parts = detector.parts()
    part_names = list(parts)
    groups = []
    for part in match_parts(part_names, list(stage.train)):
        scale = lr_scale(part, part_names, stage.lr_mult, layer_decay)
        named = [(n, p) for n, p in parts[part].named_parameters() if p.requires_grad]
        decay = [p for _, p in named if p.ndim > 1]
        norm = [p for n, p in named if p.ndim <= 1 and not n.endswith("bias")]
        bias = [p for n, p in named if p.ndim <= 1 and n.endswith("bias")]
        for group_params, decay_value, is_bias in ((decay, weight_decay, False), (norm, 0.0, False),
                                                   (bias, 0.0, True)):
            if group_params:
                groups.append({"params": group_params, "lr": base_lr * scale, "lr_scale": scale,
                               "weight_decay": decay_value, "part": part, "bias": is_bias})
    return groups
