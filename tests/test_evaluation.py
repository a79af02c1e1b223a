"""COCO evaluation: ids, hand-computed APs, ignore regions, backend parity and results files
(`evaluate` on a detector: test_evaluate_detector.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.data.records import DatasetRecords, ImageRecord
from detector.errors import DetectorError
from detector.evaluation import (
    STAT_NAMES,
    evaluate_predictions,
    predictions_to_coco,
    records_to_coco,
)

BACKENDS = ("faster", "pycocotools")


def make_records(images, class_names=("a", "b"), category_ids=None, size=(200, 160)):
    """images: list of (boxes xyxy, labels, ignore xyxy) per image; ids 10, 11, ..."""
    width, height = size
    records = []
    for i, (boxes, labels, ignore) in enumerate(images):
        records.append(ImageRecord(
            image_id=10 + i, paths={"rgb": Path(f"/nowhere/{i}.png")}, width=width, height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64).reshape(-1),
            ignore=np.asarray(ignore, dtype=np.float32).reshape(-1, 4)))
    ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
    return DatasetRecords(images=records, class_names=list(class_names), category_ids=ids)


def prediction(boxes, scores, labels):
    return {"boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "scores": np.asarray(scores, dtype=np.float32), "labels": np.asarray(labels)}


def perfect(records):
    return [prediction(r.boxes, np.full(len(r.boxes), 0.9), r.labels) for r in records.images]


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions_score_one(backend):
    records = make_records([([[10, 10, 60, 70], [100, 20, 180, 150]], [0, 1], []),
                            ([[30, 30, 90, 80]], [1], [])])
    metrics = evaluate_predictions(records, perfect(records), backend=backend)
    assert metrics.stats["AP"] == pytest.approx(1.0)
    assert metrics.stats["AP50"] == pytest.approx(1.0)
    assert metrics.stats["AR100"] == pytest.approx(1.0)
    assert metrics.per_class == {"a": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)},
                                 "b": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}}
    assert metrics.instances == {"a": 1, "b": 2}
    assert metrics.stats["APs"] == -1  # no small boxes: COCO says "nothing to measure"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_precision_recall(backend):
    # two boxes, three detections by score: hit, miss, hit. PR points (R, P): (.5, 1), (.5, .5),
    # (1, 2/3). Interpolated on COCO's 101 recall points: 0..0.50 -> 1, 0.51..1 -> 2/3.
    records = make_records([([[10, 10, 60, 60], [100, 100, 150, 150]], [0, 0], [])],
                           class_names=("a",))
    detections = [prediction([[10, 10, 60, 60], [60, 100, 90, 130], [100, 100, 150, 150]],
                             [0.9, 0.8, 0.7], [0, 0, 0])]
    metrics = evaluate_predictions(records, detections, backend=backend)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    for name in ("AP", "AP50", "AP75"):
        assert metrics.stats[name] == pytest.approx(expected, abs=1e-9)
    # the miss is small (30 x 30 px): an unmatched detection outside an area range is not
    # counted against it, so for medium boxes both hits are all there is
    assert metrics.stats["APm"] == pytest.approx(1.0)
    assert metrics.stats["AR1"] == pytest.approx(0.5)
    assert metrics.stats["AR100"] == pytest.approx(1.0)
    assert metrics.per_class["a"]["AP50"] == pytest.approx(expected, abs=1e-9)
    recall, precision = metrics.pr_curve(0)
    assert precision[50] == pytest.approx(1.0) and precision[51] == pytest.approx(2 / 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iou_between_thresholds(backend):
    # IoU of the detection with the box: 40*50 / (50*50) = 0.8 -> a hit at IoU 0.50..0.80,
    # a miss at 0.85..0.95: AP = 7/10 of the thresholds
    records = make_records([([[0, 0, 50, 50]], [0], [])], class_names=("a",))
    metrics = evaluate_predictions(records, [prediction([[0, 0, 40, 50]], [0.5], [0])],
                                   backend=backend)
    assert metrics.stats["AP50"] == pytest.approx(1.0)
    assert metrics.stats["AP75"] == pytest.approx(1.0)
    assert metrics.stats["AP"] == pytest.approx(0.7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ignore_region_is_neither_hit_nor_miss(backend):
    # class b has one box; a higher-scoring class-b detection lies on an ignore region
    images = [([[10, 10, 60, 60], [120, 20, 180, 80]], [0, 1], [[100, 100, 190, 150]])]
    detections = [prediction([[105, 105, 185, 145], [10, 10, 60, 60], [120, 20, 180, 80]],
                             [0.95, 0.9, 0.8], [1, 0, 1])]
    with_ignore = evaluate_predictions(make_records(images), detections, backend=backend)
    assert with_ignore.stats["AP"] == pytest.approx(1.0)
    assert with_ignore.per_class["b"]["AP"] == pytest.approx(1.0)
    # the same detection without the ignore region is a false positive ranked first
    images_plain = [(boxes, labels, []) for boxes, labels, _ in images]
    plain = evaluate_predictions(make_records(images_plain), detections, backend=backend)
    assert plain.per_class["b"]["AP"] < 0.9
    # an ignore region holds no ground truth: nothing to find there
    assert with_ignore.instances == {"a": 1, "b": 1}


def test_ignore_regions_become_crowd_annotations_of_every_category():
    records = make_records([([[10, 10, 60, 60]], [0], [[100, 100, 190, 150]])],
                           category_ids=[3, 7])
    truth = records_to_coco(records)
    crowd = [a for a in truth["annotations"] if a["iscrowd"]]
    assert sorted(a["category_id"] for a in crowd) == [3, 7]
    assert all(a["bbox"] == [100.0, 100.0, 90.0, 50.0] and a["area"] == 4500.0 for a in crowd)
    plain = [a for a in truth["annotations"] if not a["iscrowd"]]
    assert plain == [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [10.0, 10.0, 50.0, 50.0],
                      "area": 2500.0, "iscrowd": 0}]
    assert truth["images"] == [{"id": 10, "width": 200, "height": 160, "file_name": "0.png"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_category_ids_non_contiguous_and_from_zero_map_back(backend, tmp_path):
    # labels 0, 1, 2 are categories 0, 5, 2 (not in id order); only class "b" (id 5) is found
    records = make_records([([[10, 10, 60, 60], [70, 70, 120, 120], [130, 10, 190, 60]],
                             [0, 1, 2], [])], class_names=("a", "b", "c"), category_ids=[0, 5, 2])
    detections = [prediction([[70, 70, 120, 120]], [0.9], [1])]
    results = predictions_to_coco(records, detections)
    assert results == [{"image_id": 10, "category_id": 5, "bbox": [70.0, 70.0, 50.0, 50.0],
                        "score": pytest.approx(0.9)}]
    metrics = evaluate_predictions(records, detections, backend=backend)
    assert metrics.per_class["b"]["AP"] == pytest.approx(1.0)
    assert metrics.per_class["a"]["AP"] == 0.0 and metrics.per_class["c"]["AP"] == 0.0
    assert metrics.stats["AP"] == pytest.approx(1 / 3)
    # precision is kept in label order: column 1 is class "b"
    assert metrics.pr_curve(1)[1][0] == pytest.approx(1.0)
    assert metrics.pr_curve(0)[1][0] == 0.0
    # the same results through a json file give the same numbers
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(results))
    from_file = evaluate_predictions(records, path, backend=backend)
    assert from_file.stats == metrics.stats


def random_case(seed: int, images: int = 25, classes: int = 3):
    rng = np.random.default_rng(seed)
    entries, detections = [], []
    for _ in range(images):
        count = rng.integers(0, 6)
        xy = rng.uniform(0, 120, (count, 2))
        wh = rng.uniform(3, 80, (count, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, [200, 160])], 1)
        labels = rng.integers(classes, size=count)
        ignore = [[0, 0, 40, 40]] if rng.random() < 0.2 else []
        entries.append((boxes, labels, ignore))
        copies = np.repeat(np.arange(count), 3)
        jittered = boxes[copies] + rng.normal(0, 6, (len(copies), 4))
        noise_xy = rng.uniform(0, 150, (4, 2))
        noise = np.concatenate([noise_xy, noise_xy + rng.uniform(2, 50, (4, 2))], 1)
        det_boxes = np.concatenate([jittered, noise]).clip(0, 200)
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 0.5)
        det_labels = np.concatenate([np.where(rng.random(len(copies)) < 0.8, labels[copies],
                                              rng.integers(classes, size=len(copies))),
                                     rng.integers(classes, size=4)])
        detections.append(prediction(det_boxes, rng.random(len(det_boxes)), det_labels))
    names = [f"class{k}" for k in range(classes)]
    return make_records(entries, class_names=names, category_ids=[4, 0, 9][:classes]), detections


@pytest.mark.parametrize("backend", ["faster", "hotcoco"])
@pytest.mark.parametrize("seed, classes", [(0, 3), (1, 3), (2, 3), (3, 1)])
def test_backends_give_the_same_stats(seed, classes, backend):
    """Through records, as `fit` and `bench` evaluate: ignore regions, images without ground
    truth, one class or three; the stats, precision array and per-class AP of pycocotools."""
    records, detections = random_case(seed, classes=classes)
    ours = evaluate_predictions(records, detections, backend=backend)
    reference = evaluate_predictions(records, detections, backend="pycocotools")
    for name in STAT_NAMES:
        assert abs(ours.stats[name] - reference.stats[name]) <= 1e-12, name
    assert 0.05 < reference.stats["AP"] < 0.95  # a case with hits and misses, not a trivial one
    np.testing.assert_allclose(ours.precision, reference.precision, atol=1e-12)
    for name in records.class_names:
        assert ours.per_class[name]["AP"] == pytest.approx(reference.per_class[name]["AP"],
                                                           abs=1e-12)


@pytest.mark.parametrize("backend", ["faster", "hotcoco"])
def test_no_predictions_gives_pycocotools_stats(backend):
    """An epoch whose model finds nothing: every stat as pycocotools has it (0, or -1 where
    there is no ground truth in an area range)."""
    records, _ = random_case(0)
    nothing = [prediction([], [], []) for _ in records.images]
    ours = evaluate_predictions(records, nothing, backend=backend)
    reference = evaluate_predictions(records, nothing, backend="pycocotools")
    assert ours.stats == reference.stats and ours.num_predictions == 0


def test_stock_faster_coco_eval_agrees_with_the_direct_path(tmp_path):
    # our faster backend feeds faster-coco-eval's C++ directly; its own pipeline must agree
    from faster_coco_eval import COCO, COCOeval_faster

    records, detections = random_case(5, images=40)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(records_to_coco(records)))
    dt_path.write_text(json.dumps(predictions_to_coco(records, detections)))
    gt = COCO(str(gt_path))
    stock = COCOeval_faster(gt, gt.loadRes(str(dt_path)), "bbox", print_function=lambda *a: None)
    stock.evaluate()
    stock.accumulate()
    stock.summarize()
    ours = evaluate_predictions(records, dt_path, backend="faster")
    assert [ours.stats[name] for name in STAT_NAMES] == pytest.approx(list(stock.stats[:12]),
                                                                      abs=1e-12)


def test_class_without_ground_truth_is_nan_and_left_out():
    records = make_records([([[10, 10, 60, 60]], [0], [])])
    metrics = evaluate_predictions(records, perfect(records))
    assert metrics.per_class["a"]["AP"] == pytest.approx(1.0)
    assert np.isnan(metrics.per_class["b"]["AP"])
    assert metrics.stats["AP"] == pytest.approx(1.0)  # COCO averages classes with ground truth
    report = json.loads(json.dumps(metrics.to_dict()))  # NaN is written as null
    assert report["per_class"]["b"] == {"AP": None, "AP50": None}
    assert list(report["stats"]) == list(STAT_NAMES)
    table = metrics.table()
    assert "AP50-95" in table and "AR100" in table and table.splitlines()[2].startswith("a ")


def test_no_predictions_scores_zero():
    records = make_records([([[10, 10, 60, 60]], [0], [])])
    for backend in BACKENDS:
        metrics = evaluate_predictions(records, [prediction([], [], [])], backend=backend)
        assert metrics.stats["AP"] == 0.0 and metrics.num_predictions == 0


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    ('{"image_id": 10}', "expected a COCO results list"),
    ('[{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5},'
     ' {"image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}]',
     "result 1: image_id 99 is not an image"),
    ('[{"image_id": 10, "category_id": 8, "bbox": [1, 1, 5, 5], "score": 0.5}]',
     "result 0: category_id 8 is not a category"),
    ('[{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5], "score": 0.5}]',
     "result 0: bbox [1, 1, 5] is not [x, y, width, height]"),
    ('[{"image_id": 10, "category_id": 1, "bbox": [1, "a", 5, 5], "score": 0.5}]',
     "result 0: bbox"),
    ('[{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5]}]', "result 0: lacks score"),
    ('[{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5], "score": NaN}]',
     "result 0: score nan is not a finite number"),
])
def test_bad_results_file_is_one_line_error(tmp_path, content, expected):
    records = make_records([([[10, 10, 60, 60]], [0], [])])
    path = tmp_path / "dt.json"
    path.write_text(content)
    with pytest.raises(DetectorError) as info:
        evaluate_predictions(records, path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_unknown_backend_is_refused():
    records = make_records([([[10, 10, 60, 60]], [0], [])])
    with pytest.raises(DetectorError, match="unknown evaluation backend 'lvis'"):
        evaluate_predictions(records, perfect(records), backend="lvis")


# --- evaluate(): batched inference with a tiny detector -------------------------------------

def test_vectorised_ious_equal_faster_coco_evals_bit_for_bit():
    # ties in score, more than 100 detections in a pair (truncated), crowd boxes, fractions
    from faster_coco_eval import COCO, COCOeval_faster

    from detector.evaluation.faster import _box_ious
    from detector.evaluation.results import index_results as _index_results

    records, detections = random_case(7, images=12)
    first = records.images[0]
    first.boxes = np.concatenate([first.boxes, [[20, 20, 90, 90]]]).astype(np.float32)
    first.labels = np.concatenate([first.labels, [0]]).astype(np.int64)
    rng = np.random.default_rng(7)
    many = rng.uniform(0, 150, (130, 2))
    detections[0] = prediction(np.concatenate([many, many + rng.uniform(1, 60, (130, 2))], 1),
                               np.round(rng.random(130), 1), np.zeros(130, np.int64))
    truth = records_to_coco(records)
    results = _index_results(predictions_to_coco(records, detections), "results",
                             {r.image_id for r in records.images}, set(records.category_ids))
    gt = COCO()
    gt.dataset = truth
    gt.createIndex()
    stock = COCOeval_faster(gt, gt.loadRes([dict(r) for r in results]), "bbox",
                            print_function=lambda *a: None)
    stock.params.imgIds = sorted(stock.params.imgIds)
    stock._prepare()
    image_ids, category_ids = stock.params.imgIds, sorted(stock.params.catIds)
    ours = _box_ious(truth["annotations"], results, {i: n for n, i in enumerate(image_ids)},
                     {c: k for k, c in enumerate(category_ids)}, 100)
    compared = 0
    for n, image_id in enumerate(image_ids):
        for k, category_id in enumerate(category_ids):
            expected = stock.computeIoU(image_id, category_id)
            got = ours.get(n * len(category_ids) + k)
            if len(expected) == 0:
                assert got is None
                continue
            assert got.shape == expected.shape and np.array_equal(got, expected)
            assert got.flags["F_CONTIGUOUS"] == expected.flags["F_CONTIGUOUS"]
            compared += 1
    assert compared > 10
    assert ours[0 * len(category_ids) + 1].shape[0] == 100  # image 0, id 4 (label 0): truncated


def test_gc_paused_restores_the_collector_even_on_error():
    import gc

    from detector.evaluation.coco import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
