"""The COCO evaluators, one registry: name -> function(truth, results) -> `Evaluation`.

- `hotcoco` (the default): hotcoco's Rust COCOeval, a port of pycocotools that reads the json
  files itself; exact against pycocotools (tests hold all 12 stats and the precision array to
  1e-12 on a corpus of crowd regions, ignore flags, empty images, >100 detections per image,
  every area range, categories without ground truth and tied scores) and the fastest.
- `pycocotools`: the reference, pycocotools' COCOeval on COCO objects built from the dicts.
- `faster`: faster-coco-eval's C++ matcher and accumulator, fed directly, with every IoU
  computed in one vectorised numpy pass (`_box_ious`, bit for bit its own `computeIoU`).

truth: a `GroundTruth` (truth.py); results: COCO bbox result dicts, each with id (from 1),
area (w * h) and iscrowd 0 as `results.index_results` leaves them, or, for hotcoco only, the
path of a results json it parses itself (checked by the caller, evaluation/hotcoco_results.py).
Every backend evaluates `truth.image_ids` / `truth.category_ids` (None: all), as pycocotools'
params.imgIds / catIds, and returns COCO's 12 stats and accumulated precision array (hotcoco,
asked for no array: per-category AP and AP50 instead, without importing numpy).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import namedtuple
from pathlib import Path

from detector.errors import ConfigError

BACKENDS: dict = {}
DEFAULT_BACKEND = "hotcoco"


def register_backend(name: str):
    """Decorator: add an evaluator to BACKENDS under `name` (once)."""
    def add(function):
        if name in BACKENDS:
            raise ValueError(f"evaluation backend {name!r} is registered twice")
        BACKENDS[name] = function
        return function
    return add


def get_backend(name: str):
    """The evaluator called `name`; ConfigError listing the valid names otherwise."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown evaluation backend {name!r}; expected one of "
                          f"{', '.join(BACKENDS)}")
    return BACKENDS[name]


# What a backend computed (a namedtuple: typing.NamedTuple or dataclasses would import typing
# or inspect on the two-file path, a tenth of it on a small set).
# - stats: the 12 COCO stats, in pycocotools' order (metrics.STAT_NAMES)
# - category_ids: the evaluated category ids, sorted (the K axis of `precision`)
# - precision: [T, R, K, A, M] accumulated precision (IoU thresholds, recall thresholds,
#   categories, area ranges all/small/medium/large, max detections 1/10/100), -1 where
#   undefined; a numpy array, or None when not asked for
# - recall_thresholds [R], iou_thresholds [T]: the evaluator's own
# - image_count: images evaluated
# - per_category: {category id: (AP, AP50)} (area all, 100 detections, NaN without ground
#   truth) when `precision` is None, as hotcoco computes them without numpy
Evaluation = namedtuple("Evaluation", ["stats", "category_ids", "precision", "recall_thresholds",
                                       "iou_thresholds", "image_count", "per_category"],
                        defaults=[None])


@contextlib.contextmanager
def _quiet_fd(fd: int):
    """Send what native code writes straight to file descriptor `fd` (hotcoco's summary table
    on stdout, its load warnings on stderr: Rust prints past sys.stdout) to /dev/null."""
    stream = sys.stdout if fd == 1 else sys.stderr
    with contextlib.suppress(AttributeError, ValueError):
        stream.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def hotcoco_core():
    """hotcoco's compiled core (COCO, COCOeval) without its Python package's __init__, which
    also imports numpy and its plotting and framework helpers: about 0.1 s, a fifth of a whole
    evaluation of 400k detections. Registered as `hotcoco.hotcoco`, so a later `import hotcoco`
    uses this same module. Falls back to `import hotcoco` where the core is not found apart."""
    if "hotcoco.hotcoco" in sys.modules:
        return sys.modules["hotcoco.hotcoco"]
    from importlib.machinery import PathFinder
    from importlib.util import find_spec, module_from_spec

    package = find_spec("hotcoco")  # locates the package without running its __init__
    spec = PathFinder.find_spec("hotcoco.hotcoco", package.submodule_search_locations or []) \
        if package is not None else None
    if spec is None or spec.loader is None:
        import hotcoco

        return hotcoco
    module = module_from_spec(spec)
    sys.modules["hotcoco.hotcoco"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["hotcoco.hotcoco"]
        raise
    return module


def hotcoco_truth(truth):
    """A hotcoco COCO of `truth`: parsed from its file in Rust when it is one unchanged."""
    core = hotcoco_core()
    return core.COCO(str(truth.path)) if truth.path is not None else core.COCO(truth.load())


def _hotcoco_per_category(evaluator, names: dict[int, str]) -> dict[int, tuple[float, float]]:
    """{category id: (AP, AP50)} of a summarized hotcoco evaluator, area all, 100 detections,
    NaN for a category without ground truth; `names`: category id -> its unique name.

    Without numpy (its import is a third of a small evaluation): AP from hotcoco's per-class
    results; AP50 from accumulating the same matches once more at IoU 0.5, area all, 100
    detections only (hotcoco maps these onto the evaluated thresholds, areas and limits by
    value; about a tenth of the first accumulate). The evaluator's params are left changed."""
    import warnings

    every = evaluator.get_results(per_class=True)
    params = evaluator.params
    params.iou_thrs, params.max_dets = [0.5], [100]
    params.area_rng, params.area_rng_lbl = [list(params.area_rng[0])], ["all"]
    evaluator.accumulate()
    with warnings.catch_warnings(), _quiet_fd(1):
        warnings.simplefilter("ignore")  # "iou_thrs differ from default": meant
        evaluator.summarize()
    at_50 = evaluator.get_results(per_class=True)
    nan = float("nan")
    return {c: (float(every.get(f"AP/{n}", nan)), float(at_50.get(f"AP/{n}", nan)))
            for c, n in names.items()}


def run_hotcoco(gt, dt, truth, precision: bool = True) -> Evaluation:
    """hotcoco's COCOeval of loaded COCO objects `gt`, `dt` on `truth`'s ids. precision=False:
    per-category AP and AP50 instead of the precision array, and numpy is not imported (unless
    two evaluated categories share a name, which hotcoco's per-class results cannot tell
    apart)."""
    core = hotcoco_core()
    evaluator = core.COCOeval(gt, dt, "bbox")
    if truth.image_ids is not None:
        evaluator.params.img_ids = list(truth.image_ids)
    if truth.category_ids is not None:
        evaluator.params.cat_ids = list(truth.category_ids)
    evaluator.evaluate()
    evaluator.accumulate()
    with _quiet_fd(1):
        evaluator.summarize()
    values = evaluator.get_results()
    from detector.evaluation.metrics import STAT_NAMES

    params = evaluator.params
    category_ids = list(params.cat_ids)
    result = Evaluation(stats=[float(values[name]) for name in STAT_NAMES],
                        category_ids=category_ids, precision=None,
                        recall_thresholds=list(params.rec_thrs),
                        iou_thresholds=list(params.iou_thrs), image_count=len(params.img_ids))
    names = {int(c["id"]): str(c["name"]) for c in gt.load_cats(category_ids)}
    if precision or len(set(names.values())) < len(names):
        return result._replace(precision=evaluator.eval["precision"])
    return result._replace(per_category=_hotcoco_per_category(evaluator, names))


@register_backend("hotcoco")
def _hotcoco_eval(truth, results) -> Evaluation:
    """hotcoco on `truth`; results: result dicts, or a results json path (parsed in Rust)."""
    gt = hotcoco_truth(truth)
    with _quiet_fd(2):
        dt = gt.load_res(str(results) if isinstance(results, (str, Path)) else results)
    return run_hotcoco(gt, dt, truth)


def _stock(evaluator) -> Evaluation:
    """An `Evaluation` of an evaluated and accumulated pycocotools-style evaluator."""
    import io

    import numpy as np

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.summarize()
    return Evaluation(stats=[float(v) for v in evaluator.stats[:12]],
                      category_ids=[int(c) for c in evaluator.params.catIds],
                      precision=np.asarray(evaluator.eval["precision"]),
                      recall_thresholds=[float(v) for v in evaluator.params.recThrs],
                      iou_thresholds=[float(v) for v in evaluator.params.iouThrs],
                      image_count=len(evaluator.params.imgIds))


@register_backend("pycocotools")
def _pycocotools_eval(truth, results) -> Evaluation:
    """pycocotools' COCOeval on indexed COCO objects (no loadRes: it would add an unused
    polygon to each detection, and it fails on an empty list)."""
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = truth.load()
    gt, dt = COCO(), COCO()
    gt.dataset = dataset
    dt.dataset = {"images": dataset["images"], "categories": dataset["categories"],
                  "annotations": results}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        if truth.image_ids is not None:
            evaluator.params.imgIds = list(truth.image_ids)
        if truth.category_ids is not None:
            evaluator.params.catIds = list(truth.category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    return _stock(evaluator)


@register_backend("faster")
def _faster_eval(truth, results) -> Evaluation:
    """faster-coco-eval's C++ matcher and accumulator (evaluation/faster.py)."""
    from detector.evaluation.faster import faster_eval

    return _stock(faster_eval(truth, results))
