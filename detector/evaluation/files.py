"""Two json files -> `Metrics`: a COCO ground truth and a results file, nothing else read.

`evaluate_files(gt.json, dt.json)` is pycocotools run on those two files: every image and
category of the ground truth is evaluated (its defaults), against the json's own annotations;
no image file is opened, so the images need not exist. Classes are the json's categories in id
order.

This is the path of `detector eval --data GT.json --predictions DT.json`, kept lean: it imports
no torch, no OpenCV and no detector data layer, and with `hotcoco` (the default) and no PR
curves asked for, not even numpy. hotcoco parses both files in Rust and the results file is
checked without a Python pass over it (evaluation/hotcoco_results.py); other backends parse and
check it in Python (evaluation/results.py). Either way a bad file is one line naming its first
offending entry.
"""

from __future__ import annotations

from pathlib import Path

from detector.errors import DetectorError
from detector.evaluation.backends import DEFAULT_BACKEND, get_backend, hotcoco_truth, run_hotcoco
from detector.evaluation.hotcoco_results import load_checked
from detector.evaluation.metrics import Metrics, to_metrics
from detector.evaluation.results import gc_paused, index_results, read_results
from detector.evaluation.truth import GroundTruth, read_coco_json


def _hotcoco_files(truth: GroundTruth, dt_path: Path, precision: bool):
    """(evaluation, class names, category ids, instances, detections) with hotcoco."""
    try:
        gt = hotcoco_truth(truth)
    except ValueError as e:  # hotcoco's parse error; the Python reader names file and line
        read_coco_json(truth.path)
        raise DetectorError(f"{truth.path}: not a COCO json: {e}") from e
    dt, count = load_checked(gt, dt_path)
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
