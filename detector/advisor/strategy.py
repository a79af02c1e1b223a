"""From measurements to a transfer strategy: the quadrant of the seed matrix, then what trains.

The seed matrix (CS231n, "Transfer Learning"):

                 similar data                         different data
    small data   keep the features, train the top     features from a middle layer
    large data   fine-tune everything                 initialise from pretrained, train all

Size: `large` when there are at least LARGE_IMAGES images and the smallest class has at least
LARGE_SMALLEST_CLASS boxes (the rarest class is what overfits first). Similarity: the mean layer
gap of the BatchNorm profile (detector/advisor/gap.py) under THRESHOLDS[distance].similar.

What trains, per quadrant (parts in model order: stem, backbone.<i>, neck, head):
- small + similar: the top. `feature_extraction` (head only) when every class has a pretrained
  row, `finetune_top` (head, neck, last backbone stage) when some classes start fresh.
- large + similar: `finetune_all`.
- small + different: freeze the parts before the *departure depth* (the first part whose gap
  reaches the similar threshold: up to there the pretrained features still fit) and train the
  rest: the detector's version of "features from a middle layer".
- large + different: every part, from the pretrained init.
A fresh head (any class without a pretrained row) first trains alone for HEAD_FIRST_SHARE of the
epochs, so its random gradients do not wreck the features it sits on, unless the warmup lasts at
least as long: a linear warmup from ~0 already keeps those early updates small, and a head-only
stage in a short schedule costs a large share of the epochs in which the rest can adapt (on the
3-epoch validation bench, one head-only epoch lost 0.08 to 0.13 mAP50 against training every
part from the start on bccd and llvip_mini IR; benchmarks/advise_bench.py). Learning rates: parts that
start fresh or whose gap says they must change train at the full lr; pretrained parts whose gap
is small train at PRETRAINED_LR_MULT of it (the seeds' "pretrained low, new high").
A deep gap (the last backbone stage and the neck) over THRESHOLDS[distance].far means the
pretrained semantics hardly apply: negative transfer is possible and training from scratch may
win, so the advice says to bench it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from detector.advisor.size import DataSize

LARGE_IMAGES = 1000
LARGE_SMALLEST_CLASS = 500
PRETRAINED_LR_MULT = 0.1
HEAD_FIRST_SHARE = 0.2
# YOLOv5 / ultralytics warm up over at least 100 iterations; fewer leave a fresh head unstable.
WARMUP_ITERATIONS = 100
# Default schedule: about this many iterations, within [MIN_EPOCHS, MAX_EPOCHS].
TARGET_ITERATIONS = 3000
MIN_EPOCHS, MAX_EPOCHS = 10, 100


@dataclass(frozen=True)
class Thresholds:
    """similar: the layer gap under which the data counts as the pretraining domain (skl 0.1 is
    a mean shift of about 0.3 standard deviations per channel); far: the deep-layer gap from
    which negative transfer is a risk (skl 1.0: about one standard deviation)."""

    similar: float
    far: float


# w2 of a pure mean shift equals skl's; for a variance change it grows about half as fast.
THRESHOLDS = {"skl": Thresholds(0.1, 1.0), "w2": Thresholds(0.05, 0.5)}

SEED_MATRIX = {
    ("small", "similar"): "keep the pretrained features, train the top",
    ("large", "similar"): "fine-tune everything",
    ("small", "different"): "features from a middle layer: keep the layers that still fit, "
                            "re-learn the rest",
    ("large", "different"): "initialise from pretrained and train everything",
}


@dataclass
class Quadrant:
    size: str
    similarity: str
    size_reason: str
    similarity_reason: str

    @property
    def name(self) -> str:
        return f"{self.size} + {self.similarity}"

    @property
    def seed_advice(self) -> str:
        return SEED_MATRIX[(self.size, self.similarity)]


def classify(size: DataSize, gap_score: float, distance: str = "skl") -> Quadrant:
    """The quadrant for a data set of `size` whose (worst view's) gap score is `gap_score`."""
    limits = THRESHOLDS[distance]
    smallest = size.smallest_class
    smallest_boxes = smallest[1] if smallest else 0
    large = size.images >= LARGE_IMAGES and smallest_boxes >= LARGE_SMALLEST_CLASS
    size_reason = (f"{size.images} images (large from {LARGE_IMAGES}), smallest class "
                   f"{smallest[0] if smallest else '-'} {smallest_boxes} boxes (large from "
                   f"{LARGE_SMALLEST_CLASS})")
    similar = gap_score < limits.similar
    similarity_reason = (f"mean layer gap {gap_score:.3f} {distance} "
                         f"({'<' if similar else '>='} {limits.similar:g})")
    return Quadrant("large" if large else "small", "similar" if similar else "different",
                    size_reason, similarity_reason)


@dataclass
class TrainingPlan:
    """What trains: `preset` (one stage of `epochs`) or `stages` ([{epochs, train, lr_mult}]),
    `lr_mult` for every stage, frozen parts, warmup, and the reasons in words."""

    epochs: int
    preset: str | None = None
    stages: list[dict] | None = None
    lr_mult: dict[str, float] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    departure: str | None = None
    warmup_epochs: float = 1.0
    why: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def departure_part(part_gaps: dict[str, float | None], distance: str = "skl") -> str | None:
    """The first part (model order) whose gap reaches the similar threshold; None: none does."""
    limit = THRESHOLDS[distance].similar
    for part, gap in part_gaps.items():
        if gap is not None and gap >= limit:
            return part
    return None


def default_epochs(images: int, batch_size: int) -> int:
    iterations = max(1, math.ceil(images / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, round(TARGET_ITERATIONS / iterations))))


def warmup_epochs(images: int, batch_size: int, epochs: int) -> float:
    """At least WARMUP_ITERATIONS iterations, between half an epoch and 3 epochs, and no more
    than a third of the run."""
    iterations = max(1, math.ceil(images / batch_size))
    value = min(3.0, max(0.5, WARMUP_ITERATIONS / iterations))
    return round(min(value, max(epochs / 3, 0.1)), 2)


def _top(part_names: list[str]) -> list[str]:
    backbone = [p for p in part_names if p.startswith("backbone.")]
    return [p for p in part_names if p in ("neck", "head") or p in backbone[-1:]]


def plan_training(quadrant: Quadrant, part_gaps: dict[str, float | None], part_names: list[str],
                  fresh_head: bool, epochs: int, images: int, batch_size: int,
                  distance: str = "skl") -> TrainingPlan:
    """The TrainingPlan for `quadrant` (see the module docstring).

    part_gaps: part -> gap (None: no BatchNorm there), the worst over the data's views;
    fresh_head: some class has no pretrained row (or the head is new altogether)."""
    limits = THRESHOLDS[distance]
    plan = TrainingPlan(epochs=epochs, warmup_epochs=warmup_epochs(images, batch_size, epochs))
    measured = any(g is not None for g in part_gaps.values())
    departure = departure_part(part_gaps, distance) if measured else None
    plan.departure = departure

    def lr_for(parts: list[str]) -> dict[str, float]:
        # Pretrained parts that already fit move slowly; fresh or departing parts at full lr.
        # A part without BatchNorm (the head) fits when the data as a whole is similar.
        mult = {}
        for part in parts:
            gap = part_gaps.get(part)
            fits = gap < limits.similar if gap is not None else quadrant.similarity == "similar"
            if fits and not (part == "head" and fresh_head):
                mult[part] = PRETRAINED_LR_MULT
        return mult

    if quadrant.similarity == "similar":
        if quadrant.size == "small":
            train = ["head"] if not fresh_head else _top(part_names)
            plan.preset = "feature_extraction" if not fresh_head else "finetune_top"
            plan.why.append("every class has a pretrained row: only the head trains" if not fresh_head
                            else "some classes start fresh: the head, neck and last backbone stage train")
        else:
            train = list(part_names)
            plan.preset = "finetune_all"
            plan.why.append("enough data to fine-tune every part without overfitting")
        plan.lr_mult = lr_for(train)
        plan.frozen = [p for p in part_names if p not in train]
        return plan
    if quadrant.size == "small" and departure is not None:
        train = part_names[part_names.index(departure):]
        plan.why.append(f"the gap reaches {limits.similar:g} at {departure}: "
                        + (f"{', '.join(part_names[:part_names.index(departure)])} still fit and "
                           "stay frozen" if train != part_names else "already the first layer "
                           "departs, so every part trains"))
    else:
        train = list(part_names)
        plan.why.append("no BatchNorm to locate the departure: every part trains" if not measured
                        else "every part trains from the pretrained init")
    if "head" not in train:
        train.append("head")
    plan.frozen = [p for p in part_names if p not in train]
    mult = lr_for(train)
    head_epochs = max(1, round(epochs * HEAD_FIRST_SHARE)) if fresh_head and epochs >= 2 else 0
    stages = []
    if head_epochs and plan.warmup_epochs >= head_epochs:
        plan.why.append(f"the fresh head gets no head-only stage: the {plan.warmup_epochs:g}-epoch "
                        f"warmup covers the {head_epochs} epoch(s) it would take")
        head_epochs = 0
    if head_epochs:
        stages.append({"epochs": head_epochs, "train": ["head"], "lr_mult": {}})
        plan.why.append(f"the fresh head trains alone for {head_epochs} epoch(s) first")
    stages.append({"epochs": epochs - head_epochs, "train": train,
                   "lr_mult": {p: m for p, m in mult.items() if p in train}})
    plan.stages = stages
    deep = [p for p in part_names if p == "neck"] + [p for p in part_names
                                                      if p.startswith("backbone.")][-1:]
    deep_gaps = [part_gaps[p] for p in deep if part_gaps.get(p) is not None]
    if deep_gaps and max(deep_gaps) >= limits.far:
        plan.warnings.append(
            f"negative transfer risk: the deep-layer gap ({', '.join(deep)}: "
            f"{max(deep_gaps):.2f} {distance} >= {limits.far:g}) says the pretrained semantics "
            "hardly apply; training from scratch may win, so bench it "
            "(the same recipe with model.weights: null and model.class_map: null)")
    return plan


__all__ = ["LARGE_IMAGES", "LARGE_SMALLEST_CLASS", "SEED_MATRIX", "THRESHOLDS", "Quadrant",
           "Thresholds", "TrainingPlan", "classify", "default_epochs", "departure_part",
           "plan_training", "warmup_epochs"]
