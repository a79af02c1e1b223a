"""`check_dataset`: what `detector data check` reports about a dataset split.

The readers already report what they see in the labels (boxes past the border, zero-size boxes,
unknown classes, missing files). The check adds what needs the pixels and the whole split:
- every image decoded by the training decoder, with its rules (detector/data/preflight.py): a
  truncated, corrupt or float file -> `corrupt_image`; a partner or image of another size than
  its labels -> `modality_size_mismatch`; colour read as lwir -> `colour_as_lwir` (warning),
- image ids and image files listed twice (-> `duplicate_id`),
and the summary statistics: images, boxes per class, box sizes, image sizes, modalities.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from detector.data.preflight import check_pixels
from detector.data.records import ERROR, DatasetRecords, Problem
from detector.tables import format_table

# COCO's small / medium / large split of box areas (pixels^2)
SMALL_AREA = 32 ** 2
LARGE_AREA = 96 ** 2


@dataclass
class CheckReport:
    """The records, every problem (the reader's and the check's) and the summary numbers."""

    records: DatasetRecords
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    def to_json(self) -> dict:
        """{images, boxes, per_class, ignore, modalities, ..., problems: [{file, line, kind, ...}]}"""
        return {**self.summary, "problems": [p.to_dict() for p in self.problems]}


def _check_duplicates(records: DatasetRecords, problems: list[Problem]) -> None:
    first_with_id = {}
    for record in records.images:
        path = next(iter(record.paths.values()))
        if record.image_id in first_with_id:
            problems.append(Problem(str(path), "duplicate_id", f"image id {record.image_id} is "
                                    f"also the id of {first_with_id[record.image_id]}"))
        else:
            first_with_id[record.image_id] = path
    files = Counter(path for r in records.images for path in r.paths.values())
    for path, count in files.items():
        if count > 1:
            problems.append(Problem(str(path), "duplicate_id", f"image listed {count} times"))


def _stats(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"min": None, "median": None, "max": None}
    return {"min": float(values.min()), "median": float(np.median(values)),
            "max": float(values.max())}


def summarize(records: DatasetRecords) -> dict:
    """Counts and size statistics of a split (plain JSON-able data).

    {source, images, negatives, boxes, ignore, modalities, per_class {name: boxes},
     box_width / box_height {min, median, max} px, box_area {small, medium, large},
     image_sizes {"WxH": images}}"""
    boxes = np.concatenate([r.boxes for r in records.images] or [np.zeros((0, 4), np.float32)])
    labels = np.concatenate([r.labels for r in records.images] or [np.zeros(0, np.int64)])
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    counts = np.bincount(labels, minlength=len(records.class_names))
    sizes = Counter(f"{r.width}x{r.height}" for r in records.images)
    return {
        "source": records.source,
        "images": len(records.images),
        "negatives": sum(1 for r in records.images if len(r.boxes) == 0),
        "boxes": int(len(boxes)),
        "ignore": int(sum(len(r.ignore) for r in records.images)),
        "modalities": list(records.modalities),
        "per_class": {name: int(counts[i]) for i, name in enumerate(records.class_names)},
        "box_width": _stats(widths),
        "box_height": _stats(heights),
        "box_area": {"small": int((areas < SMALL_AREA).sum()),
                     "medium": int(((areas >= SMALL_AREA) & (areas < LARGE_AREA)).sum()),
                     "large": int((areas >= LARGE_AREA).sum())},
        "image_sizes": dict(sizes.most_common()),
    }


def check_dataset(records: DatasetRecords, decode: bool = True,
                  progress: bool = True) -> CheckReport:
    """Scan a split: the reader's problems, plus decode / size / duplicate checks, plus stats.

    decode=False skips decoding the pixels (the label-level checks stay)."""
    problems = list(records.problems)
    if decode:  # with the training decoder and its rules, so check passes what training takes
        problems += check_pixels(records, progress=progress)
    _check_duplicates(records, problems)
    return CheckReport(records=records, problems=problems, summary=summarize(records))


def format_summary(summary: dict) -> str:
    """The `summarize` dict as the aligned tables `detector data check` prints."""
    overview = format_table(["source", "images", "negatives", "boxes", "ignore", "modalities"], [[
        summary["source"], summary["images"], summary["negatives"], summary["boxes"],
        summary["ignore"], "+".join(summary["modalities"])]])
    classes = format_table(["class", "boxes"],
                           [[n, c] for n, c in summary["per_class"].items() if c > 0])
    empty = [n for n, c in summary["per_class"].items() if c == 0]
    sizes = format_table(["box (px)", "min", "median", "max"], [
        [key.split("_")[1]] + [summary[key][s] for s in ("min", "median", "max")]
        for key in ("box_width", "box_height")], float_format=".1f")
    areas = format_table(["small (<32^2)", "medium", "large (>=96^2)"],
                         [[summary["box_area"][k] for k in ("small", "medium", "large")]])
    image_sizes = format_table(["image size", "images"],
                               [[k, v] for k, v in list(summary["image_sizes"].items())[:10]])
    more = len(summary["image_sizes"]) - 10
    parts = [overview, classes]
    if empty:
        named = ", ".join(empty) if len(empty) <= 10 else f"{len(empty)} classes"
        parts[-1] += f"\nno boxes: {named}"
    parts += [sizes, areas, image_sizes + (f"\n... and {more} more sizes" if more > 0 else "")]
    return "\n\n".join(parts)
