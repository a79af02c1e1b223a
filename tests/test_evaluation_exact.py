"""Every backend gives pycocotools' 12 stats run directly on the source json (|diff| <= 1e-9),
on a generated corpus of the hard cases and on coco128's own annotations; two json files need
no image and no torch."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.evaluation.backends import BACKENDS
from detector.evaluation.files import evaluate_files
from detector.evaluation.metrics import STAT_NAMES


def pycocotools_stats(gt_path: Path, dt_path: Path, image_ids=None, category_ids=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path)) if json.loads(dt_path.read_text()) else COCO()
        evaluator = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        if category_ids is not None:
            evaluator.params.catIds = sorted(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, evaluator.stats[:12].tolist()))


def hard_corpus(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Crowd regions, an `ignore` flag, images without ground truth or without detections, >100
    detections on one image, small / medium / large boxes, a category without ground truth,
    tied scores, an `area` that differs from w * h (segmentation area)."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, 13)]
    categories = [{"id": c, "name": f"c{c}"} for c in (3, 7, 11)]  # 11: no ground truth
    annotations, results = [], []
    for image in images[:-2]:  # the last two images: no ground truth
        for _ in range(rng.integers(1, 8)):
            w, h = rng.choice([8, 20, 60, 150]), rng.choice([8, 25, 70, 200])
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            category = int(rng.choice([3, 7]))
            crowd = int(rng.random() < 0.1)
            annotation = {"id": len(annotations) + 1, "image_id": image["id"],
                          "category_id": category, "bbox": [x, y, float(w), float(h)],
                          "area": float(w * h * rng.uniform(0.5, 1.0)), "iscrowd": crowd}
            if rng.random() < 0.1:
                annotation["ignore"] = 1
            annotations.append(annotation)
            if image["id"] % 5 == 0:  # images 5 and 10: no detections
                continue
            for _ in range(rng.integers(1, 4)):
                jitter = rng.normal(0, 4, 4)
                results.append({"image_id": image["id"], "category_id": int(rng.choice([3, 7, 11])),
                                "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]),
                                         max(1.0, h + jitter[3])],
                                "score": float(np.round(rng.random(), 1))})  # many ties
    for _ in range(130):  # > 100 detections on image 1
        results.append({"image_id": 1, "category_id": 3,
                        "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 400)), 30.0, 30.0],
                        "score": float(rng.random())})
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": annotations,
                                   "categories": categories}))
    dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_backend_equals_pycocotools_on_the_hard_corpus(tmp_path, backend, seed):
    gt_path, dt_path = hard_corpus(tmp_path, seed)
    reference = pycocotools_stats(gt_path, dt_path)
    ours = evaluate_files(gt_path, dt_path, backend=backend).stats
    for name in STAT_NAMES:
        assert abs(ours[name] - reference[name]) <= 1e-12, (name, ours[name], reference[name])


def test_two_json_files_are_enough_and_need_no_torch(tmp_path):
    """Nor numpy: hotcoco gives the per-class AP and AP50 (no PR curves asked for)."""
    gt_path, dt_path = hard_corpus(tmp_path)
    script = ("import sys; from detector.cli import main; code = main(['eval', '--data', 'gt.json', "
              "'--predictions', 'dt.json', '--json', 'm.json']); "
              "heavy = [m for m in ('torch', 'cv2', 'ultralytics', 'numpy') if m in sys.modules]; "
              "print('HEAVY', heavy); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(Path(__file__).parents[1]),
                                          "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    stats = json.loads((tmp_path / "m.json").read_text())
    reference = pycocotools_stats(gt_path, dt_path)
    found = stats.get("stats", stats)
    assert abs(found["AP"] - reference["AP"]) <= 1e-9


@pytest.mark.shared_data
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_detector_eval_equals_pycocotools_on_coco128s_json(tmp_path, shared_data, backend):
    """The issue's case: crowd boxes and segmentation areas that differ from w * h."""
    from detector.cli import main

    gt_path = shared_data / "coco128" / "annotations" / "instances_train2017.json"
    truth = json.loads(gt_path.read_text())
    rng = np.random.default_rng(0)
    results = []
    for annotation in truth["annotations"]:  # detections near every box, some missed
        if rng.random() < 0.2:
            continue
        x, y, w, h = annotation["bbox"]
        jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
        results.append({"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                        "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]),
                                 max(1.0, h + jitter[3])], "score": float(rng.random())})
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(json.dumps(results))
    reference = pycocotools_stats(gt_path, dt_path)
    out = tmp_path / "m.json"
    assert main(["eval", "--data", str(gt_path), "--predictions", str(dt_path),
                 "--backend", backend, "--json", str(out)]) == 0
    stats = json.loads(out.read_text())
    found = stats.get("stats", stats)
    for name in STAT_NAMES:
        assert abs(found[name] - reference[name]) <= 1e-9, (name, found[name], reference[name])


@pytest.mark.shared_data
def test_records_read_from_the_json_are_scored_on_its_own_annotations(tmp_path, shared_data):
    """`evaluate` / `fit` / `bench` go through records: they still score the json's areas and
    per-category crowd boxes (rebuilt from records, APm was 0.399 instead of 0.467)."""
    from detector.data.readers import read_dataset
    from detector.evaluation.coco import evaluate_predictions

    gt_path = shared_data / "coco128" / "annotations" / "instances_train2017.json"
    records = read_dataset(str(gt_path), images=shared_data / "coco128" / "images" / "train2017")
    truth = json.loads(gt_path.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "bbox": [v + 1.5 for v in a["bbox"][:2]] + a["bbox"][2:], "score": 0.5 + 0.001 * i}
               for i, a in enumerate(truth["annotations"]) if i % 4]
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(json.dumps(results))
    reference = pycocotools_stats(gt_path, dt_path, image_ids=[r.image_id for r in records.images],
                                  category_ids=records.category_ids)
    ours = evaluate_predictions(records, str(dt_path)).stats
    for name in STAT_NAMES:
        assert abs(ours[name] - reference[name]) <= 1e-9, (name, ours[name], reference[name])
