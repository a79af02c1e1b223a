"""`advise(data, models)`: measure a data set against candidate pretrained models and recommend
how to transfer them (the quadrant, what trains at which lr, image size, stem init, class map).

    advice = advise("hit_uav_mini", models=["yolov5n"])
    print(format_report(advice))             # detector/advisor/report.py
    write_recipe(advice, "recipe.yaml")      # detector/advisor/recipe.py

Costs: the labels of the whole split (no pixels), plus `max_images` decoded images run once
through each candidate in eval mode (32 images: a few seconds per model on 2 CPU cores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from detector.advisor.candidate import Candidate, class_overlap, load_candidate
from detector.advisor.channels import ChannelInfo, data_channels, stem_init_for, stem_reason
from detector.advisor.gap import get_distance
from detector.advisor.profile import GapProfile, Sample, measure_profiles, sample_images
from detector.advisor.size import DataSize, measure_size, recommend_image_size
from detector.advisor.strategy import (
    Quadrant, TrainingPlan, classify, default_epochs, plan_training,
)
from detector.data.records import DatasetRecords, ImageRecord
from detector.errors import DatasetError

DEFAULT_MODELS = ("yolov5n",)
VAL_SPLITS = ("val", "valid", "validation", "test")


@dataclass
class ModelAdvice:
    """The measurements and the recommendation for one candidate model."""

    candidate: Candidate
    overlap: dict[str, str]
    profiles: list[GapProfile]
    size: DataSize
    image_size: int
    image_size_reason: str
    stem_init: str | None
    stem_reason: str
    quadrant: Quadrant
    plan: TrainingPlan
    unlabelled: list[GapProfile] = field(default_factory=list)

    @property
    def gap_score(self) -> float:
        return max(p.score for p in self.profiles)

    @property
    def part_gaps(self) -> dict[str, float | None]:
        """part -> the worst gap over the views (None: no BatchNorm in the part)."""
        return combined_part_gaps(self.profiles)

    @property
    def fresh_classes(self) -> int:
        return self.size_classes - len(self.overlap)

    @property
    def size_classes(self) -> int:
        return len(self.size.boxes_per_class)


@dataclass
class Advice:
    source: str
    split: str | None
    val_split: str | None
    class_names: list[str]
    channels: ChannelInfo
    models: list[ModelAdvice]
    batch_size: int
    distance: str
    unlabelled: str | None = None
    unlabelled_images: int = 0
    seconds: float = 0.0

    @property
    def chosen(self) -> ModelAdvice:
        """The candidate the recipe is written for: detector weights before backbones, then the
        most classes kept by `class_map: auto`, then the smallest gap."""
        return min(self.models, key=lambda m: (m.candidate.kind != "detector", -len(m.overlap),
                                               m.gap_score))


def combined_part_gaps(profiles: list[GapProfile]) -> dict[str, float | None]:
    combined: dict[str, float | None] = {}
    for profile in profiles:
        for part, gap in profile.parts.items():
            if gap is not None:
                combined[part] = gap if combined.get(part) is None else max(combined[part], gap)
            else:
                combined.setdefault(part, None)
    return combined


def resolve_splits(source: str, split: str | None, val_split: str | None
                   ) -> tuple[str | None, str | None]:
    """(train split, val split) for a card: `train` (else its first split) and the first of
    VAL_SPLITS (else a split whose name contains 'val'); a path keeps what was given."""
    from detector.data.cards import find_card, load_card

    card_path = find_card(str(source))
    if card_path is None:
        return split, val_split
    names = list(load_card(card_path).splits)
    if split is None:
        split = "train" if "train" in names else names[0]
    if val_split is None:
        others = [n for n in names if n != split]
        val_split = next((n for n in VAL_SPLITS if n in others),
                         next((n for n in others if "val" in n), None))
    return split, val_split


def model_input_size(detector) -> int:
    """The long side the detector evaluates at (yolo image_size, rcnn max_size; else 640)."""
    return int(detector.eval_long_side() or detector.build_args().get("max_size") or 640)


def _unlabelled_records(folder: Path, modality: str) -> DatasetRecords:
    from detector.data.readers import index_images

    if not folder.is_dir():
        raise DatasetError(f"--unlabelled {folder}: expected a folder of images")
    paths = list(index_images(folder).values())
    if not paths:
        raise DatasetError(f"--unlabelled {folder}: no image files in the folder")
    images = [ImageRecord(image_id=i, paths={modality: p}, width=0, height=0)
              for i, p in enumerate(paths)]
    return DatasetRecords(images, [], [], modalities=[modality], source=str(folder))


def _check_records(records: DatasetRecords, where: str) -> None:
    if len(records) == 0:
        raise DatasetError(f"{where}: the data set has no images; nothing to measure")
    if records.num_boxes == 0:
        raise DatasetError(f"{where}: the data set has {len(records)} images but no labelled "
                           "boxes; advise needs labels to size the data and write a recipe")


def _advise_model(candidate: Candidate, records: DatasetRecords, sample: Sample,
                  channels: ChannelInfo, epochs: int | None, image_size: int | None,
                  batch_size: int, distance: str,
                  unlabelled: Sample | None) -> ModelAdvice:
    detector = candidate.detector
    where = f"--model {candidate.spec}"
    init = stem_init_for(int(detector.in_channels), channels.channels, where)
    profiles = measure_profiles(detector, sample, list(records.modalities), distance, where)
    size = measure_size(records, model_input_size(detector))
    if image_size is None:
        chosen_size, size_reason = recommend_image_size(size)
    else:
        chosen_size, size_reason = int(image_size), "given (--image-size)"
    overlap = class_overlap(list(records.class_names), candidate)
    gap_score = max(p.score for p in profiles)
    quadrant = classify(size, gap_score, distance)
    fresh_head = len(overlap) < len(records.class_names)
    run_epochs = epochs or default_epochs(size.images, batch_size)
    part_names = list(detector.parts())
    plan = plan_training(quadrant, combined_part_gaps(profiles), part_names, fresh_head,
                         run_epochs, size.images, batch_size, distance)
    target = []
    if unlabelled is not None:
        target = measure_profiles(detector, unlabelled, unlabelled_modalities(records), distance,
                                  where)
    return ModelAdvice(candidate, overlap, profiles, size, chosen_size, size_reason, init,
                       stem_reason(init, channels.channels), quadrant, plan, target)


def unlabelled_modalities(records: DatasetRecords) -> list[str]:
    return list(records.modalities[:1])


def advise(data: str, models=DEFAULT_MODELS, split: str | None = None,
           val_split: str | None = None, modalities: list[str] | None = None,
           max_images: int = 32, epochs: int | None = None, image_size: int | None = None,
           batch_size: int = 8, unlabelled: str | Path | None = None, distance: str = "skl",
           seed: int = 0) -> Advice:
    """Measure `data` (a card name or path, as `read_dataset` takes it) against each of `models`
    (archs, weights names or files) and recommend a transfer strategy for each.

    max_images: images decoded and run through each model for the gap; epochs / image_size:
    fix the schedule instead of deriving it from the data; unlabelled: a folder of target images
    without labels (measured too; the advice then points to domain adaptation).
    Raises DatasetError for data with no images or no boxes, ConfigError for a model that
    cannot meet the data's channels.
    """
    from detector.data.readers import read_dataset

    start = time.perf_counter()
    get_distance(distance)  # an unknown name fails before any work
    if max_images < 1:
        raise DatasetError(f"--images: expected at least 1, got {max_images}")
    split, val_split = resolve_splits(str(data), split, val_split)
    records = read_dataset(data, split=split, modalities=list(modalities) if modalities else None)
    _check_records(records, f"{data}" + (f" (split {split})" if split else ""))
    sample = sample_images(records, max_images, seed)
    channels = ChannelInfo(list(records.modalities), data_channels(list(records.modalities)),
                           bits={m: r.bits for m, r in sample.ranges.items()},
                           range_used={m: r.used() for m, r in sample.ranges.items()})
    target_sample, target_count = None, 0
    if unlabelled is not None:
        target = _unlabelled_records(Path(unlabelled), unlabelled_modalities(records)[0])
        target_count = len(target)
        target_sample = sample_images(target, max_images, seed)
    results = []
    for spec in models:
        candidate = load_candidate(str(spec), list(records.class_names))
        results.append(_advise_model(candidate, records, sample, channels, epochs, image_size,
                                     batch_size, distance, target_sample))
    advice = Advice(str(data), split, val_split, list(records.class_names), channels, results,
                    batch_size, distance, str(unlabelled) if unlabelled else None, target_count)
    advice.seconds = time.perf_counter() - start
    return advice


__all__ = ["Advice", "DEFAULT_MODELS", "ModelAdvice", "advise", "combined_part_gaps",
           "model_input_size", "resolve_splits"]
