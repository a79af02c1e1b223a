"""COCO bbox results: reading a results json, checking it, and the one-line error for it.

A results file is a json list [{image_id, category_id, bbox: [x, y, w, h] pixels, score}, ...]
in the ground truth's own image and category ids, as every COCO tool writes it. Checking is
optimistic: one cheap pass does the work, and only when it trips does `bad_result` walk the
list again to name the first offending entry.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from pathlib import Path

from detector.errors import DetectorError

RESULTS_FORMAT = "a COCO results list [{image_id, category_id, bbox: [x, y, w, h], score}, ...]"


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector for a block that builds many small acyclic
    objects (a results json of 400k detections): each collection it triggers would walk every
    object built so far, about half the time of `json.load` on such a file. Reference counting
    still frees everything; the collector's previous state is restored on exit."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _entry_error(result, where: str, image_ids, category_ids) -> DetectorError | None:
    if not isinstance(result, dict):
        return DetectorError(f"{where}: expected an object {{image_id, category_id, bbox, "
                             f"score}}, got {str(result)[:60]}")
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in result]
    if missing:
        return DetectorError(f"{where}: lacks {', '.join(missing)}")
    bbox, score = result["bbox"], result["score"]
    numbers = isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in bbox)
    if not numbers or bbox[2] < 0 or bbox[3] < 0:
        return DetectorError(f"{where}: bbox {bbox!r} is not [x, y, width, height] of "
                             "finite numbers with width, height >= 0")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return DetectorError(f"{where}: score {score!r} is not a finite number")
    if image_ids is not None and result["image_id"] not in image_ids:
        return DetectorError(f"{where}: image_id {result['image_id']!r} is not an image of "
                             f"the ground truth ({len(image_ids)} images)")
    if category_ids is not None and result["category_id"] not in category_ids:
        return DetectorError(f"{where}: category_id {result['category_id']!r} is not a "
                             f"category of the ground truth (ids: {sorted(category_ids)})")
    return None


def bad_result(results, path, image_ids=None, category_ids=None) -> DetectorError | None:
    """The one-line error for the first result that is not a valid COCO bbox result (or whose
    image / category id is not in `image_ids` / `category_ids`, sets; None: not checked), or
    None when every result is fine."""
    if not isinstance(results, list):
        return DetectorError(f"{path}: expected {RESULTS_FORMAT}, got a JSON "
                             f"{type(results).__name__}")
    for index, result in enumerate(results):
        error = _entry_error(result, f"{path}: result {index}", image_ids, category_ids)
        if error is not None:
            return error
    return None


def index_results(results, path, image_ids: set, category_ids: set) -> list[dict]:
    """Check COCO bbox results and give each an id (from 1), area (w * h) and iscrowd 0 in
    place, as pycocotools' loadRes does; DetectorError naming `path` and the first bad entry."""
    if not isinstance(results, list):
        raise bad_result(results, path)
    try:
        for index, result in enumerate(results, 1):
            x, y, width, height = result["bbox"]
            # float + str / None / list raises TypeError: checks every value's type at once
            total = 0.0 + x + y + width + height + result["score"]
            if width < 0 or height < 0 or not math.isfinite(total):
                raise ValueError
            result["area"] = width * height
            result["id"] = index
            result["iscrowd"] = 0
        seen_images = {result["image_id"] for result in results}
        seen_categories = {result["category_id"] for result in results}
    except (TypeError, ValueError, KeyError) as e:
        raise (bad_result(results, path, image_ids, category_ids)
               or DetectorError(f"{path}: expected {RESULTS_FORMAT}")) from e
    if not seen_images <= image_ids or not seen_categories <= category_ids:
        raise bad_result(results, path, image_ids, category_ids)
    return results


def read_results(path):
    """The parsed json of a results file (not yet checked); DetectorError naming the file (and
    line) when it cannot be read or is not JSON."""
    path = Path(path)
    try:
        with open(path, "rb") as f, gc_paused():
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DetectorError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected "
                            f"{RESULTS_FORMAT}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DetectorError(f"{path}: cannot read the results file: {e}") from e


def load_results(path, image_ids: set, category_ids: set) -> list[dict]:
    """Read and check a COCO results json against the ground truth's ids (see
    `index_results`)."""
    return index_results(read_results(path), path, image_ids, category_ids)
