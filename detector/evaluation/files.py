"""Two json files -> `Metrics`: a COCO ground truth and a results file, nothing else read.

`evaluate_files(gt.json, dt.json)` is pycocotools run on those two files: every image and
category of the ground truth is evaluated (its defaults), against the json's own annotations;
no image file is opened, so the images need not exist. Classes are the json's categories in id
order.

This is the path of `detector eval --data GT.json --predictions DT.json`, kept lean: it imports
no torch, no OpenCV and no detector data layer. With `hotcoco` (the default) both files are
parsed by hotcoco in Rust, and the results file is checked without a Python pass over it:
hotcoco refuses a bbox of the wrong length, a NaN or non-numeric score and malformed json; it
reports image and category ids the ground truth lacks; a file that is not a list is seen from
its first byte. Only when one of these trips is the file read in Python (`results.bad_result`)
to name the first offending entry in one line. Other backends parse and check it in Python.
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


def _diagnose(path: Path, image_ids: set, category_ids: set, reason: str) -> DetectorError:
    """The one-line error for a results file hotcoco refused or warned about: the first bad
    entry, found in Python; else hotcoco's own reason."""
    error = bad_result(read_results(path), path, image_ids, category_ids)
    return error or DetectorError(f"{path}: {reason}; expected {RESULTS_FORMAT}")


def _hotcoco_files(truth: GroundTruth, dt_path: Path):
    """(evaluation, class names, category ids, instances, detections) with hotcoco."""
    try:
        gt = hotcoco_truth(truth)
    except ValueError as e:  # hotcoco's parse error; the Python reader names file and line
        read_coco_json(truth.path)
        raise DetectorError(f"{truth.path}: not a COCO json: {e}") from e
    image_ids, category_ids = set(gt.get_img_ids()), set(gt.get_cat_ids())
    if _first_byte(dt_path) != b"[":
        raise _diagnose(dt_path, image_ids, category_ids, "not a json list")
    try:
        with _quiet_fd(2):  # hotcoco prints its load warnings; they are read back below
            dt = gt.load_res(str(dt_path))
    except ValueError as e:
        raise _diagnose(dt_path, image_ids, category_ids, str(e)) from e
    if dt.load_warnings:  # ids the ground truth lacks: an error here, as in pycocotools
        raise _diagnose(dt_path, image_ids, category_ids, dt.load_warnings[0])
    evaluation = run_hotcoco(gt, dt, truth)
    statistics = gt.stats()["per_category"]
    by_id = {int(c["id"]): c for c in statistics}
    ordered = sorted(by_id)
    names = [str(by_id[c]["name"]) for c in ordered]
    instances = {str(by_id[c]["name"]): int(by_id[c]["ann_count"]) - int(by_id[c]["crowd_count"])
                 for c in ordered}
    return evaluation, names, ordered, instances, int(dt.stats()["annotation_count"])


def evaluate_files(gt_path, dt_path, backend: str = DEFAULT_BACKEND) -> Metrics:
    """COCO metrics of the results json `dt_path` on the COCO json `gt_path` (module
    docstring); DetectorError naming the file and the first bad entry on bad input."""
    run = get_backend(backend)
    gt_path, dt_path = Path(gt_path), Path(dt_path)
    if backend == "hotcoco":
        truth = GroundTruth(None, gt_path)
        evaluation, names, ids, instances, count = _hotcoco_files(truth, dt_path)
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
