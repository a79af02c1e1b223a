"""A results json parsed by hotcoco in Rust, and checked without a Python pass over it.

`load_checked(gt, path)` -> (hotcoco COCO of the results, number of results), or a
DetectorError naming the file and its first offending entry, as `results.bad_result` words it
for the other backends. What trips, and then sends the file through Python's json and
`bad_result` to name the entry:

- a file that is not a json list: its first byte
- malformed json, a bbox of the wrong length, a non-numeric or NaN score, a duplicate key,
  no image_id / category_id: hotcoco refuses the file
- an image or category id the ground truth lacks, an infinite score: hotcoco's load warnings
- a result without a bbox, or with a negative width or height: hotcoco gives it no area, or a
  negative one, so it is missing from the ids of area >= 0 (`get_ann_ids(area_rng=...)`)
- a result without a score, or a null one (hotcoco would read it as 0): the bytes hold fewer
  "score" keys than results, or a null (`_every_result_scored`)

One case passes unnamed: a box with both width and height negative, before the last result
(its area is positive); hotcoco scores it as pycocotools would, the other backends refuse it.

hotcoco numbers the results 1..N in file order, so the ids of area >= 0 are 1..N exactly when
every result has a box; N is the last result's id, the result at the file's end, read on its own
(`_last_result`): one list of N ids instead of two.
"""

from __future__ import annotations

import json
from pathlib import Path

from detector.errors import DetectorError
from detector.evaluation.backends import _quiet_fd
from detector.evaluation.results import RESULTS_FORMAT, bad_result, read_results


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DetectorError(f"{path}: cannot read the results file: {e}") from e


def _every_result_scored(data: bytes, count: int) -> bool:
    """Whether each of the `count` results in the file's bytes has a score that is not null.
    hotcoco refuses a duplicate key, so `count` "score" keys are one per result; a null is looked
    for only where an `l` occurs at all (the four result keys and numbers spell none)."""
    return data.count(b'"score"') == count and (b"l" not in data or b"null" not in data)


def _last_result(data: bytes):
    """The file's last result, parsed from the text after its last `{`; None when that is not
    one flat, valid result (a nested object, say: then Python reads the whole file)."""
    start, end = data.rfind(b"{"), data.rfind(b"]")  # (no rstrip: it would copy the file)
    try:
        last = json.loads(data[start:end])
    except ValueError:
        return None
    return last if bad_result([last], "") is None else None


def _refusal(path: Path, image_ids: set, category_ids: set, reason: str) -> DetectorError | None:
    """The one-line error naming the first bad result of `path`, found in Python; hotcoco's
    own `reason` when Python finds no bad entry; None when `reason` is empty and every entry is
    fine (the doubt was unfounded)."""
    error = bad_result(read_results(path), path, image_ids, category_ids)
    if error is None and reason:
        return DetectorError(f"{path}: {reason}; expected {RESULTS_FORMAT}")
    return error


def load_checked(gt, path: Path):
    """hotcoco's COCO of the results file `path` on the ground truth `gt` (a hotcoco COCO),
    and the number of results; DetectorError naming the first offending entry (module
    docstring)."""
    def refusal(reason: str) -> DetectorError | None:
        return _refusal(path, set(gt.get_img_ids()), set(gt.get_cat_ids()), reason)

    data = _read(path)
    if (data[:4096].lstrip() or data.lstrip())[:1] != b"[":  # (a copy only if all blank)
        raise refusal("not a json list")
    try:
        with _quiet_fd(2):  # hotcoco prints its load warnings; they are read back below
            dt = gt.load_res(str(path))
    except ValueError as e:  # malformed json, a bbox of the wrong length, a NaN score
        raise refusal(str(e)) from e
    if dt.load_warnings:  # ids the ground truth lacks, an infinite score
        raise refusal(dt.load_warnings[0])
    boxed = dt.get_ann_ids(area_rng=[0.0, float("inf")])  # sorted ids, 1..N in file order
    count = len(boxed)
    if count and boxed[-1] == count and _last_result(data) is not None \
            and _every_result_scored(data, count):
        return dt, count
    error = refusal("")
    if error is not None:
        raise error
    return dt, len(dt.get_ann_ids())
