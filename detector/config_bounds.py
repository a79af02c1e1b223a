"""The valid range of every numeric config key, in one table.

`config.py` checks each value against `BOUNDS` where it reads it, so a value outside its range is
refused naming the file, line and key, instead of failing mid-run (negative workers in the
DataLoader, a negative warm-up in the schedule, momentum 1 in AdamW). A numeric key added to the
config without an entry here fails tests/test_config_bounds.py.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """The valid range of a numeric key: low <= value <= high (`<` where the end is open)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'> ' if self.open_low else 'at least '}{_number(self.low)}"
        low = "(" if self.open_low else "["
        high = ")" if self.open_high else "]"
        return f"a value in {low}{_number(self.low)}, {_number(self.high)}{high}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# `*` stands for a list index or a mapping key.
BOUNDS = {
    "model.in_channels": Bound(1),
    "model.image_size": Bound(32),
    # family options read as sizes (rcnn min_size/max_size, ultralytics image_size): a size
    # of 0 or less is only noticed by torch's resize, mid-step
    "model.options.min_size": Bound(1),
    "model.options.max_size": Bound(1),
    "model.options.image_size": Bound(32),
    "train.epochs": Bound(1),
    "train.batch_size": Bound(1),
    "train.lr": Bound(0, open_low=True),
    "train.momentum": Bound(0, 1, open_high=True),
    "train.weight_decay": Bound(0),
    "train.warmup_epochs": Bound(0),
    "train.final_lr_ratio": Bound(0, 1),
    "train.warmup_bias_lr": Bound(0),
    "train.clip_grad": Bound(0, open_low=True),
    "train.ema_decay": Bound(0, 1, open_low=True, open_high=True),
    "train.eval_every": Bound(1),
    "train.layer_decay": Bound(0, 1, open_low=True),
    "train.workers": Bound(0),
    "train.seed": Bound(0, 2**32 - 1),
    "train.lr_mult.*": Bound(0),
    "train.stages.*.epochs": Bound(1),
    "train.stages.*.lr_mult.*": Bound(0),
}


def bound_of(dotted: str) -> Bound | None:
    """The entry of BOUNDS for a dotted key ('train.stages.1.epochs'), or None."""
    if dotted in BOUNDS:
        return BOUNDS[dotted]
    return next((b for pattern, b in BOUNDS.items() if "*" in pattern
                 and fnmatch.fnmatchcase(dotted, pattern)
                 and dotted.count(".") == pattern.count(".")), None)
