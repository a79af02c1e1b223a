"""`detector eval --data GT.json --predictions DT.json`: a bad results file is one line naming
the file and its first offending entry on every backend (hotcoco parses the file in Rust and
reads a missing score as 0: it must still refuse), and the numpy-free hotcoco path gives
pycocotools' per-class AP and AP50."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from test_evaluation_exact import hard_corpus

from detector.cli import main
from detector.evaluation.backends import BACKENDS
from detector.evaluation.files import evaluate_files
from detector.outputs import MANIFEST

GOOD = '{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}'
GROUND_TRUTH = {"images": [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 80},
                           {"id": 11, "file_name": "b.jpg", "width": 100, "height": 80}],
                "annotations": [{"id": 1, "image_id": 10, "category_id": 1,
                                 "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}],
                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def entry(**fields) -> str:
    """A result with these fields changed (a value None: the field left out)."""
    result = {"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}
    result.update(fields)
    return json.dumps({k: v for k, v in result.items() if v is not None})


# (content of the results file, what the one line must say); each bad entry is the second
BAD_FILES = {
    "a json object": ('{"image_id": 10}', "expected a COCO results list"),
    "not json": (f"[{GOOD},", "not valid JSON"),
    "an entry that is not an object": (f"[{GOOD}, 5]", "result 1: expected an object"),
    "no bbox": (f"[{GOOD}, {entry(bbox=None)}]", "result 1: lacks bbox"),
    "no score": (f"[{GOOD}, {entry(score=None)}]", "result 1: lacks score"),
    "no score, first": (f"[{entry(score=None)}, {GOOD}]", "result 0: lacks score"),
    "no bbox, first": (f"[{entry(bbox=None)}, {GOOD}]", "result 0: lacks bbox"),
    "neither bbox nor score": (f"[{GOOD}, {entry(bbox=None, score=None)}]",
                               "result 1: lacks bbox, score"),
    "a null score": (f'[{GOOD}, {{"image_id": 10, "category_id": 1, "bbox": [1, 1, 5, 5], '
                     '"score": null}]', "result 1: score None is not a finite number"),
    "a bbox of 3 numbers": (f"[{GOOD}, {entry(bbox=[1, 1, 5])}]",
                            "result 1: bbox [1, 1, 5] is not [x, y, width, height]"),
    "a bbox of 5 numbers": (f"[{GOOD}, {entry(bbox=[1, 1, 5, 5, 1])}]", "result 1: bbox"),
    "a negative width": (f"[{GOOD}, {entry(bbox=[1, 1, -5, 5])}]", "width, height >= 0"),
    "a NaN score": (f"[{GOOD}, {entry(score=float('nan'))}]",
                    "result 1: score nan is not a finite number"),
    "an infinite score": (f"[{GOOD}, {entry(score=float('inf'))}]",
                          "result 1: score inf is not a finite number"),
    "a string score": (f"[{GOOD}, {entry(score='0.5')}]", "result 1: score '0.5' is not"),
    "an unknown image id": (f"[{GOOD}, {entry(image_id=99)}]",
                            "result 1: image_id 99 is not an image of the ground truth"),
    "an unknown category id": (f"[{GOOD}, {entry(category_id=8)}]",
                               "result 1: category_id 8 is not a category"),
}


@pytest.fixture
def gt_path(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GROUND_TRUTH))
    return path


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_results_file_is_one_line_naming_the_entry(tmp_path, gt_path, capsys, backend, case):
    content, expected = BAD_FILES[case]
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(content)
    code = main(["eval", "--data", str(gt_path), "--predictions", str(dt_path),
                 "--backend", backend, "--json", str(tmp_path / "m.json")])
    captured = capsys.readouterr()
    assert code == 2
    line = captured.err.strip()
    assert line.startswith("error: ") and "\n" not in line, line
    assert str(dt_path) in line and expected in line, line
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_extra_keys_and_nulls_outside_the_score_are_accepted(tmp_path, gt_path, backend):
    """What makes the hotcoco path look closer (an `l`, a null, a nested object, blanks
    around the list) is no error."""
    plain, extra = tmp_path / "plain.json", tmp_path / "extra.json"
    results = [json.loads(GOOD), json.loads(entry(image_id=11, score=0.25))]
    plain.write_text(json.dumps(results))
    extra.write_text("\n " + json.dumps([{**r, "file_name": "a.jpg", "track": None,
                                         "more": {"a": 1}} for r in results]) + "\n")
    assert evaluate_files(gt_path, extra, backend=backend).stats == \
        evaluate_files(gt_path, plain, backend=backend).stats


def reference_per_class(gt_path, dt_path) -> dict:
    """{category id: (AP, AP50)} from pycocotools' precision array, area all, 100 detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    per_class = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = evaluator.eval["precision"][:, :, k, 0, -1]
        defined = values[values > -1]
        at_50 = values[0][values[0] > -1]
        per_class[category] = (defined.mean() if defined.size else np.nan,
                               at_50.mean() if at_50.size else np.nan)
    return per_class


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("precision", [False, True])
def test_hotcoco_per_class_ap_equals_pycocotools(tmp_path, seed, precision):
    """Without the precision array, hotcoco's per-class AP and its AP50 from a second
    accumulation at IoU 0.5 only; with it, numpy on the array: both pycocotools' numbers."""
    gt_path, dt_path = hard_corpus(tmp_path, seed)
    metrics = evaluate_files(gt_path, dt_path, backend="hotcoco", precision=precision)
    assert (metrics.precision is not None) == precision
    names = {c["id"]: c["name"] for c in json.loads(gt_path.read_text())["categories"]}
    for category, (ap, ap50) in reference_per_class(gt_path, dt_path).items():
        found = metrics.per_class[names[category]]
        for value, expected in ((found["AP"], ap), (found["AP50"], ap50)):
            if np.isnan(expected):
                assert np.isnan(value), (category, value)
            else:
                assert abs(value - expected) <= 1e-12, (category, value, expected)


def test_a_second_eval_leaves_the_output_list_as_it_is(tmp_path, gt_path):
    """The write guard's list of outputs is not rewritten (two fsyncs) when it already names
    --json's file."""
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(f"[{GOOD}]")
    out = tmp_path / "out"
    arguments = ["eval", "--data", str(gt_path), "--predictions", str(dt_path),
                 "--json", str(out / "m.json")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(arguments) == 0
        listed = (out / MANIFEST).stat().st_ino
        assert main(arguments) == 0
    assert (out / MANIFEST).stat().st_ino == listed
    assert (out / MANIFEST).read_text() == "m.json\n"
