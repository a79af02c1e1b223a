"""Pre-flight: what can be known about a training run's inputs before its first step.

    check_pixels(records)                        # -> [Problem]: what `data check` reports
    check_training(train_data, val_data, detector, stages=..., lr=...)   # raises, or warns

One pass, every problem listed at once, before the run folder exists:
- every image of every modality is decoded by the training decoder (`images.decode_image`, the
  same code and 8/16-bit rule as `DetectionDataset`): `corrupt_image`;
- each image has the size its labels are for, and pair partners share it (channels come from
  the modality): `modality_size_mismatch`;
- an `lwir` image whose file holds real colour (a grey-converted RGB photo) is a `colour_as_lwir`
  warning: the modalities are probably wrong;
- the training set has classes and at least one box (an empty labelled set trains nothing);
- every stage trains at least one parameter at a non-zero learning rate.
`data check` calls `check_pixels`, so it passes exactly what training accepts.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from detector.data.images import decode_image, is_colour, modality_channels
from detector.data.records import ERROR, WARNING, DatasetRecords, Problem
from detector.errors import DatasetError, TrainingError

# problems shown in one error before "... and N more"
_SHOWN = 20


def _inspect(record, modality: str, path) -> list[Problem]:
    try:
        image = decode_image(path)
    except DatasetError as e:
        return [Problem(str(path), "corrupt_image", "cannot decode: " + str(e).removeprefix(f"{path}: "))]
    problems = []
    height, width = image.shape[:2]
    if (width, height) != (record.width, record.height):
        problems.append(Problem(str(path), "modality_size_mismatch",
                                f"{modality} image is {width}x{height} (as displayed) but its "
                                f"labels are for {record.width}x{record.height}"))
    if modality_channels(modality) == 1 and is_colour(image):
        problems.append(Problem(str(path), "colour_as_lwir", f"a colour image read as {modality} "
                                "(converted to grey)", severity=WARNING))
    return problems


def check_pixels(records: DatasetRecords, modalities=None, progress: bool = False) -> list[Problem]:
    """Decode every image of `modalities` (default: the records') as training does; the
    problems found, colour-as-lwir warnings gathered into one per modality. OpenCV releases the
    GIL while decoding, so threads decode in parallel."""
    modalities = list(modalities or records.modalities)
    jobs = [(record, m, record.paths[m]) for record in records.images for m in modalities
            if m in record.paths]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(lambda job: _inspect(*job), jobs), total=len(jobs),
                            desc="decoding images", unit="img", disable=not progress, leave=False))
    problems = [p for found in results for p in found if p.kind != "colour_as_lwir"]
    for modality in modalities:
        colour = [p for found in results for p in found
                  if p.kind == "colour_as_lwir" and f"read as {modality} " in p.message]
        if colour:
            total = sum(1 for _, m, _ in jobs if m == modality)
            problems.append(Problem(colour[0].file, "colour_as_lwir", f"{len(colour)} of {total} "
                                    f"{modality} images (this the first) hold colour and are "
                                    "converted to grey; is this data set really thermal? (check "
                                    "the modalities)", severity=WARNING))
    return problems


def _stage_problems(detector, stages: list, layer_decay) -> list[str]:
    from detector.train.freezing import lr_scale, match_parts

    parts = detector.parts()
    part_names = list(parts)
    found = []
    for index, stage in enumerate(stages, start=1):
        trained = match_parts(part_names, list(stage.train), where=f"train.stages.{index - 1}.train")
        count = sum(p.numel() for part in trained for p in parts[part].parameters())
        if count == 0:
            found.append(f"train stage {index} ({', '.join(stage.train)}): its parts hold no "
                         "parameters, so it would train nothing")
        elif all(lr_scale(part, part_names, stage.lr_mult, layer_decay) == 0 for part in trained):
            found.append(f"train stage {index} ({', '.join(stage.train)}): every part it trains "
                         "has lr_mult 0, so it would train nothing")
    return found


def warn(problems) -> None:
    """Print each warning as one line on stderr."""
    for problem in problems:
        if problem.severity == WARNING:
            print(f"warning: {problem}", file=sys.stderr)


def check_training(train_data, val_data, detector, *, epochs=None, stages=None, preset=None,
                   lr_mult=None, layer_decay=None, progress: bool = False) -> None:
    """Everything `fit` would otherwise find during its first epoch, checked before it starts.

    `train_data` / `val_data` are DetectionDatasets (anything else is left alone); the other
    arguments are `fit`'s. Prints the warnings; raises DatasetError listing every error (the
    data's), or TrainingError (a stage that trains nothing)."""
    from detector.train.freezing import resolve_stages

    resolved = resolve_stages(list(detector.parts()), epochs=epochs, stages=stages, preset=preset,
                              lr_mult=lr_mult)
    stage_errors = _stage_problems(detector, resolved, layer_decay)
    if stage_errors:
        raise TrainingError("; ".join(stage_errors))
    problems, errors = [], []
    for what, data in (("train", train_data), ("val", val_data)):
        records = getattr(data, "records", None)
        if records is None:
            continue
        warn(records.problems)
        # an image whose header the reader could not read is left out of the records; the
        # training decoder could not read it either, so it stops the run as a pixel error does
        errors += [str(p) for p in records.problems
                   if p.kind == "corrupt_image" and p.severity == ERROR]
        if len(records) == 0:
            errors.append(f"{records.source}: the {what} split has no usable images")
            continue
        found = check_pixels(records, data.channels, progress=progress)
        problems += found
        errors += [str(p) for p in found if p.severity == ERROR]
        if what == "train" and not records.class_names:
            errors.append(f"{records.source}: the training data names no classes")
        elif what == "train" and records.num_boxes == 0:
            errors.append(f"{records.source}: the training split has no labelled boxes (every "
                          "image is a negative), so there is nothing to learn")
        elif what == "val" and records.num_boxes == 0:
            problems.append(Problem(records.source, "no_boxes", "the val split has no labelled "
                                    "boxes: its mAP is undefined", severity=WARNING))
    warn(problems)
    if errors:
        shown = errors[:_SHOWN]
        more = f"\n... and {len(errors) - _SHOWN} more" if len(errors) > _SHOWN else ""
        head = "" if len(errors) == 1 else (f"{len(errors)} problems in the data; training did "
                                            "not start (see `detector data check`):\n")
        raise DatasetError(head + "\n".join(shown) + more)
