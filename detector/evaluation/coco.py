"""Predictions -> COCO json -> pycocotools / faster-coco-eval -> `Metrics`.

Everything is written in the dataset's own ids: image ids are `ImageRecord.image_id`, category
ids are `DatasetRecords.category_ids[label]`, so a results file from here can be handed to any
other COCO tool, and a results file from any other tool can be evaluated here.

- Ground truth: every record box is an annotation (bbox [x, y, w, h] pixels, area = w * h);
  every ignore region becomes one iscrowd=1 annotation per category, so a detection of any class
  that falls on it is neither a hit nor a miss (COCO crowd semantics).
- Detections are indexed directly (id, area, iscrowd), not through `loadRes`: it would add an
  unused polygon to each of them, and it fails on an empty list.
- Both backends evaluate the same dicts and give the same 12 stats (tests hold them to 1e-6).
  "faster" feeds faster-coco-eval's C++ matcher directly with IoUs computed in one vectorised
  pass (backends.py: `_box_ious`, bit for bit its own); it relies on faster-coco-eval 1.8's C++
  entry point (`COCOevalEvaluateAccumulate`), which tests check against its stock pipeline.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from detector.boxes import xyxy_to_xywh
from detector.data.records import DatasetRecords
from detector.errors import ConfigError, DetectorError
from detector.evaluation.backends import _faster_eval, _pycocotools_eval
from detector.evaluation.metrics import STAT_NAMES, Metrics

BACKENDS = ("faster", "pycocotools")
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


def _file_name(record) -> str:
    return next(iter(record.paths.values())).name if record.paths else str(record.image_id)


def records_to_coco(records: DatasetRecords) -> dict:
    """COCO ground truth {images, annotations, categories} of `records`, in its own ids.

    Boxes: [x, y, w, h] float pixels; area = w * h (records keep no segmentation area);
    annotation ids start at 1 (faster-coco-eval treats id 0 as "unmatched").
    """
    category_ids = np.asarray(records.category_ids, dtype=np.int64)
    every_category = category_ids.tolist()
    images, annotations = [], []
    next_id = 1
    for record in records.images:
        image_id = int(record.image_id)
        images.append({"id": image_id, "width": int(record.width), "height": int(record.height),
                       "file_name": _file_name(record)})
        boxes = xyxy_to_xywh(np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4))
        categories = category_ids[np.asarray(record.labels, dtype=np.int64)].tolist()
        for box, category in zip(boxes.tolist(), categories):
            annotations.append({"id": next_id, "image_id": image_id, "category_id": category,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
            next_id += 1
        regions = xyxy_to_xywh(np.asarray(record.ignore, dtype=np.float64).reshape(-1, 4))
        for box in regions.tolist():
            for category in every_category:
                annotations.append({"id": next_id, "image_id": image_id, "category_id": category,
                                    "bbox": box, "area": box[2] * box[3], "iscrowd": 1})
                next_id += 1
    categories = [{"id": int(cid), "name": str(name)}
                  for name, cid in zip(records.class_names, records.category_ids)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _numpy(values, dtype) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def predictions_to_coco(records: DatasetRecords, predictions: list[dict]) -> list[dict]:
    """COCO results [{image_id, category_id, bbox [x, y, w, h], score}] in the dataset's ids.

    predictions[i] belongs to records.images[i]: {"boxes": [N,4] xyxy pixels of the original
    image, "scores": [N], "labels": [N] 0-based}, tensors or arrays.
    """
    if len(predictions) != len(records.images):
        raise ValueError(f"{len(predictions)} predictions for {len(records.images)} images")
    category_ids = np.asarray(records.category_ids, dtype=np.int64)
    results = []
    for record, prediction in zip(records.images, predictions):
        labels = _numpy(prediction["labels"], np.int64).reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(category_ids)):
            raise ValueError(f"image {record.image_id}: predicted labels {labels.tolist()} are "
                             f"outside 0..{len(category_ids) - 1}")
        boxes = xyxy_to_xywh(_numpy(prediction["boxes"], np.float64).reshape(-1, 4))
        scores = _numpy(prediction["scores"], np.float64).reshape(-1)
        image_id = int(record.image_id)
        for box, score, category in zip(boxes.tolist(), scores.tolist(),
                                        category_ids[labels].tolist()):
            results.append({"image_id": image_id, "category_id": category, "bbox": box,
                            "score": score})
    return results


def _bad_result(results, path, image_ids, category_ids) -> DetectorError:
    """The one-line error for the first result that is not a valid COCO bbox result."""
    for index, result in enumerate(results):
        where = f"{path}: result {index}"
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
        if isinstance(score, bool) or not isinstance(score, (int, float)) \
                or not math.isfinite(score):
            return DetectorError(f"{where}: score {score!r} is not a finite number")
        if result["image_id"] not in image_ids:
            return DetectorError(f"{where}: image_id {result['image_id']!r} is not an image of "
                                 f"the ground truth ({len(image_ids)} images)")
        if result["category_id"] not in category_ids:
            return DetectorError(f"{where}: category_id {result['category_id']!r} is not a "
                                 f"category of the ground truth (ids: {sorted(category_ids)})")
    return DetectorError(f"{path}: expected {RESULTS_FORMAT}")


def _index_results(results: list, path, image_ids: set, category_ids: set) -> list[dict]:
    """Check COCO bbox results and give each an id, area and iscrowd, in place.

    One optimistic pass does the work (a few hundred thousand results are common); only when
    it trips does a second pass find the first bad result for the message.
    """
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
        raise _bad_result(results, path, image_ids, category_ids) from e
    if not seen_images <= image_ids or not seen_categories <= category_ids:
        raise _bad_result(results, path, image_ids, category_ids)
    return results


def load_results(path, records: DatasetRecords) -> list[dict]:
    """Read and check a COCO results json against `records`; DetectorError naming the file (and
    the result index) when it is not JSON, not a list of bbox results, or refers to an image or
    category the ground truth does not have."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            results = json.load(f)
    except json.JSONDecodeError as e:
        raise DetectorError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected "
                            f"{RESULTS_FORMAT}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DetectorError(f"{path}: cannot read the results file: {e}") from e
    if not isinstance(results, list):
        raise DetectorError(f"{path}: expected {RESULTS_FORMAT}, got a JSON "
                            f"{type(results).__name__}")
    return _index_results(results, path, {int(r.image_id) for r in records.images},
                          {int(c) for c in records.category_ids})


def _backend(name: str) -> None:
    if name not in BACKENDS:
        raise ConfigError(f"unknown evaluation backend {name!r}; expected one of "
                          f"{', '.join(BACKENDS)}")


def _per_class(precision: np.ndarray, class_names: list[str]) -> dict[str, dict[str, float]]:
    """AP (IoU 0.5:0.95) and AP50 of each class, area "all", 100 detections; NaN where the
    class has no ground truth (precision -1 throughout), as COCO leaves it out of the mean."""
    per_class = {}
    for k, name in enumerate(class_names):
        values = precision[:, :, k, 0, -1]
        at_50 = values[0]
        per_class[name] = {
            "AP": float(values[values > -1].mean()) if (values > -1).any() else float("nan"),
            "AP50": float(at_50[at_50 > -1].mean()) if (at_50 > -1).any() else float("nan"),
        }
    return per_class


def coco_metrics(records: DatasetRecords, results: list[dict], backend: str = "faster") -> Metrics:
    """Run the COCO bbox evaluation of indexed `results` (each with id, area, iscrowd, as
    `load_results` leaves them) against `records` on `backend`."""
    if not records.images:
        raise DetectorError(f"{records.source or 'dataset'}: no images to evaluate")
    _backend(backend)
    truth = records_to_coco(records)
    # both libraries print progress on stdout; the table is what the user asked for
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = (_faster_eval if backend == "faster" else _pycocotools_eval)(truth, results)
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats[:12])}
    # COCOeval orders classes by sorted category id; Metrics keeps label order
    sorted_ids = sorted(int(c) for c in records.category_ids)
    order = [sorted_ids.index(int(c)) for c in records.category_ids]
    precision = np.asarray(evaluator.eval["precision"])[:, :, order]
    counts = np.bincount(np.concatenate([np.asarray(r.labels, dtype=np.int64).reshape(-1)
                                         for r in records.images]),
                         minlength=len(records.class_names))
    return Metrics(stats=stats, per_class=_per_class(precision, records.class_names),
                   class_names=list(records.class_names), precision=precision,
                   recall_thresholds=np.asarray(evaluator.params.recThrs),
                   iou_thresholds=np.asarray(evaluator.params.iouThrs),
                   instances={name: int(n) for name, n in zip(records.class_names, counts)},
                   num_images=len(records.images), num_predictions=len(results), backend=backend)


def evaluate_predictions(records: DatasetRecords, predictions, backend: str = "faster") -> Metrics:
    """COCO metrics of predictions on `records`.

    predictions: a path to a COCO results json (in the dataset's own image and category ids),
    a list of COCO result dicts, or a list with one {"boxes" [N,4] xyxy px, "scores",
    "labels" 0-based} per record (as `evaluate` collects them).
    """
    _backend(backend)  # an unknown backend fails before any work
    with gc_paused():
        if isinstance(predictions, (str, os.PathLike)):
            results = load_results(predictions, records)
        elif predictions and isinstance(predictions[0], dict) and "image_id" in predictions[0]:
            results = _index_results([dict(r) for r in predictions], "results",
                                     {int(r.image_id) for r in records.images},
                                     {int(c) for c in records.category_ids})
        else:
            results = predictions_to_coco(records, predictions)
            for index, result in enumerate(results, 1):
                bbox = result["bbox"]
                result.update(id=index, area=bbox[2] * bbox[3], iscrowd=0)
        return coco_metrics(records, results, backend)


def _records_and_dataset(data, detector):
    """(records, dataset); DatasetRecords are loaded at their original size, with the channels
    the detector reads when it names modalities the records have (e.g. lwir of rgb + lwir)."""
    if isinstance(data, DatasetRecords):
        from detector.data.dataset import DetectionDataset

        wanted = list(detector.modalities)
        channels = wanted if wanted and set(wanted) <= set(data.modalities) else None
        long_side = detector.eval_long_side() if hasattr(detector, "eval_long_side") else None
        return data, DetectionDataset(data, channels=channels, long_side=long_side)
    records = getattr(data, "records", None)
    if not isinstance(records, DatasetRecords):
        raise TypeError(f"evaluate: expected DatasetRecords or a DetectionDataset, got "
                        f"{type(data).__name__}")
    return records, data


def _collate(batch):
    images, targets = zip(*batch)
    return list(images), list(targets)


def _to_original(output: dict, target: dict) -> dict:
    """Boxes of the dataset's returned image -> pixels of the original image (undo scale, pad)."""
    boxes = output["boxes"].detach().float().cpu().reshape(-1, 4)
    sx, sy = target.get("scale", (1.0, 1.0))
    px, py = target.get("pad", (0.0, 0.0))
    if (sx, sy, px, py) != (1.0, 1.0, 0.0, 0.0):
        boxes = (boxes - torch.tensor([px, py, px, py])) / torch.tensor([sx, sy, sx, sy])
    return {"boxes": boxes.numpy(), "scores": output["scores"].detach().float().cpu().numpy(),
            "labels": output["labels"].detach().cpu().numpy()}


def predict_dataset(detector, dataset, batch_size: int = 8, device=None, workers: int | None = None,
                    progress: bool = True) -> tuple[list[dict], float]:
    """Run `detector` over `dataset` in eval mode, under torch.inference_mode (through its
    `for_inference()` copy when it has one).

    Returns (predictions, seconds): predictions[i] = {"boxes" [N,4] xyxy pixels of the original
    image i, "scores" [N], "labels" [N]} as numpy arrays; seconds of the loop (loading included).
    """
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if workers is None:
        workers = 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_collate, pin_memory=device.type == "cuda")
    predictions: list[dict | None] = [None] * len(dataset)
    was_training = detector.training
    detector.to(device).eval()
    # BatchNorm folded into the convolutions where the family can (a copy: `detector` is kept)
    model = detector.for_inference() if hasattr(detector, "for_inference") else detector
    started = time.perf_counter()
    try:
        with torch.inference_mode(), tqdm(total=len(dataset), unit="img", desc="eval",
                                          disable=not progress, leave=False) as bar:
            for images, targets in loader:
                outputs = model([image.to(device, non_blocking=True) for image in images])
                for output, target in zip(outputs, targets):
                    predictions[int(target["index"])] = _to_original(output, target)
                bar.update(len(images))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        detector.train(was_training)
    return predictions, time.perf_counter() - started


def evaluate(detector, data, backend: str = "faster", batch_size: int = 8, device=None,
             workers: int | None = None, progress: bool = True, results_path=None) -> Metrics:
    """Evaluate `detector` on `data` (DatasetRecords, or a DetectionDataset without resizing
    transforms: the detector resizes internally) with COCO metrics.

    Inference is batched on `device` (default: CUDA when present, else CPU); images_per_s counts
    the whole loop, data loading included. results_path: also write the COCO results json there.
    """
    _backend(backend)
    records, dataset = _records_and_dataset(data, detector)
    predictions, seconds = predict_dataset(detector, dataset, batch_size=batch_size,
                                           device=device, workers=workers, progress=progress)
    if results_path is not None:
        Path(results_path).write_text(json.dumps(predictions_to_coco(records, predictions)))
    metrics = evaluate_predictions(records, predictions, backend)
    metrics.images_per_s = len(records.images) / max(seconds, 1e-9)
    return metrics
