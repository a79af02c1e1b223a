"""Two json files -> `Metrics`: a COCO ground truth and a results file, nothing else read.

`evaluate_files(gt.json, dt.json)` is pycocotools run on those two files: every image and
category of the ground truth is evaluated (its defaults), against the json's own annotations;
no image file is opened, so the images need not exist. Classes are the json's categories in id
order.

This is the path of `detector eval --data GT.json --predictions DT.json`, kept lean: it imports
no torch, no OpenCV and no detector data layer, and with `hotcoco` (the default) and no PR
curves asked for, not even numpy. hotcoco parses both files in Rust, and the results file is
checked without a Python pass over it: hotcoco refuses malformed json, a bbox of the wrong
length, a NaN or non-numeric score and a duplicate key; it reports image and category ids the
ground truth lacks and infinite scores; a result without a bbox (or with a negative width or
height) has no area there; a file that is not a list is seen from its first byte, and one
without a score per result from its bytes (`_every_result_scored`). Only when one of these
trips is the file read in Python (`results.bad_result`) to name the first offending entry in
one line. Other backends parse and check it in Python.
"""

from __future__ import annotations

from pathlib import Path

from detector.errors import DetectorError
from detector.evaluation.backends import (
    DEFAULT_BACKEND,
    _quiet_fd,
    get_backend,
    hotcoco_truth,
    run_hotcoco,
)
from detector.evaluation.metrics import Metrics, to_metrics
from detector.evaluation.results import (
    RESULTS_FORMAT,
    bad_result,
    gc_paused,
    index_results,
    read_results,
)
from detector.evaluation.truth import GroundTruth, read_coco_json


def _first_byte(path: Path) -> bytes:
    """The first non-blank byte of a file (b"" when empty); DetectorError when unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read(4096).lstrip()[:1]
    except OSError as e:
        raise DetectorError(f"{path}: cannot read the results file: {e}") from e


def _every_result_scored(path: Path, count: int) -> bool:
    """Whether each of the `count` results in `path` has a score that is not null, judged from
    the bytes (hotcoco reads a missing or null score as 0). hotcoco refuses a duplicate key, so
    `count` "score" keys are one per result; `null` is looked for only where an `l` occurs at
    all (the four result keys and numbers spell none). False: ask `results.bad_result`."""
    data = path.read_bytes()
    return data.count(b'"score"') == count and (b"l" not in data or b"null" not in data)


def _refusal(path: Path, image_ids: set, category_ids: set, reason: str) -> DetectorError | None:
    """The one-line error naming the first bad result of `path`, found in Python, for a file
    hotcoco refused or doubted; hotcoco's own `reason` when Python finds no bad entry; None
    when `reason` is empty and every entry is fine (the doubt was unfounded)."""
    error = bad_result(read_results(path), path, image_ids, category_ids)
    if error is None and reason:
        return DetectorError(f"{path}: {reason}; expected {RESULTS_FORMAT}")
    return error


def _load_results(gt, dt_path: Path):
    """hotcoco's COCO of the results file `dt_path` on the ground truth `gt`, checked: not a
    list, a malformed entry, a NaN or infinite score, an unknown image or category id, a result
    without a bbox of width, height >= 0 or without a score -> DetectorError naming the first
    offending entry. Returns (COCO, number of results)."""
    image_ids, category_ids = set(gt.get_img_ids()), set(gt.get_cat_ids())
    if _first_byte(dt_path) != b"[":
        raise _refusal(dt_path, image_ids, category_ids, "not a json list")
    try:
        with _quiet_fd(2):  # hotcoco prints its load warnings; they are read back below
            dt = gt.load_res(str(dt_path))
    except ValueError as e:  # malformed json, a bbox of the wrong length, a NaN score
        raise _refusal(dt_path, image_ids, category_ids, str(e)) from e
    if dt.load_warnings:  # ids the ground truth lacks, an infinite score
        raise _refusal(dt_path, image_ids, category_ids, dt.load_warnings[0])
    count = len(dt.get_ann_ids())
    # hotcoco gives a result without a bbox no area, and a negative width or height a negative one
    boxed = len(dt.get_ann_ids(area_rng=[0.0, float("inf")])) == count
    if not boxed or not _every_result_scored(dt_path, count):
        error = _refusal(dt_path, image_ids, category_ids, "" if boxed else "a result has no bbox")
        if error is not None:
            raise error
    return dt, count


def _hotcoco_files(truth: GroundTruth, dt_path: Path, precision: bool):
    """(evaluation, class names, category ids, instances, detections) with hotcoco."""
    try:
        gt = hotcoco_truth(truth)
    except ValueError as e:  # hotcoco's parse error; the Python reader names file and line
        read_coco_json(truth.path)
        raise DetectorError(f"{truth.path}: not a COCO json: {e}") from e
    dt, count = _load_results(gt, dt_path)
    evaluation = run_hotcoco(gt, dt, truth, precision=precision)
    statistics = gt.stats()["per_category"]
    by_id = {int(c["id"]): c for c in statistics}
    ordered = sorted(by_id)
    names = [str(by_id[c]["name"]) for c in ordered]
    instances = {str(by_id[c]["name"]): int(by_id[c]["ann_count"]) - int(by_id[c]["crowd_count"])
                 for c in ordered}
    return evaluation, names, ordered, instances, count


def evaluate_files(gt_path, dt_path, backend: str = DEFAULT_BACKEND,
                   precision: bool = True) -> Metrics:
    """COCO metrics of the results json `dt_path` on the COCO json `gt_path` (module
    docstring); DetectorError naming the file and the first bad entry on bad input.
    precision=False: no precision array in the metrics (no PR curves), which spares hotcoco
    the numpy import."""
    run = get_backend(backend)
    gt_path, dt_path = Path(gt_path), Path(dt_path)
    if backend == "hotcoco":
        truth = GroundTruth(None, gt_path)
        evaluation, names, ids, instances, count = _hotcoco_files(truth, dt_path, precision)
        return to_metrics(evaluation, names, ids, instances, count, backend)
    with gc_paused():
        dataset = read_coco_json(gt_path)
        categories = sorted({int(c["id"]): str(c.get("name", c["id"]))
                             for c in dataset["categories"]}.items())
        results = index_results(read_results(dt_path), dt_path,
                                {i["id"] for i in dataset["images"]},
                                {c for c, _ in categories})
        truth = GroundTruth(dataset, gt_path)
        evaluation = run(truth, results)
    names, ids = [n for _, n in categories], [c for c, _ in categories]
    return to_metrics(evaluation, names, ids, truth.instances(ids, names), len(results),
                      backend)
