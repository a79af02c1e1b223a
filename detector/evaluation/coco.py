"""Predictions -> COCO results -> an evaluator (backends.py) -> `Metrics`.

Everything is written in the dataset's own ids: image ids are `ImageRecord.image_id`, category
ids are `DatasetRecords.category_ids[label]`, so a results file from here can be handed to any
other COCO tool, and a results file from any other tool can be evaluated here.

The ground truth (truth.py): a COCO source is evaluated against its json's own annotations
(area, per-category iscrowd, ids), restricted to the images and categories the records hold;
YOLO and VOC sources against annotations built from the records (area = w * h; VOC difficult
boxes and a card's ignore classes as crowd regions of every category). Every backend gives
pycocotools' 12 stats on that ground truth; `hotcoco` (the default) is the fastest.
Two json files alone: evaluation/files.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from detector.data.records import DatasetRecords
from detector.errors import DetectorError
from detector.evaluation.backends import DEFAULT_BACKEND, get_backend
from detector.evaluation.metrics import Metrics, to_metrics
from detector.evaluation.results import gc_paused, index_results, load_results
from detector.evaluation.truth import truth_from_records


def _numpy(values, dtype):
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def predictions_to_coco(records: DatasetRecords, predictions: list[dict]) -> list[dict]:
    """COCO results [{image_id, category_id, bbox [x, y, w, h], score}] in the dataset's ids.

    predictions[i] belongs to records.images[i]: {"boxes": [N,4] xyxy pixels of the original
    image, "scores": [N], "labels": [N] 0-based}, tensors or arrays.
    """
    import numpy as np

    from detector.boxes import xyxy_to_xywh

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


def coco_metrics(records: DatasetRecords, results: list[dict],
                 backend: str = DEFAULT_BACKEND) -> Metrics:
    """Run the COCO bbox evaluation of indexed `results` (each with id, area, iscrowd, as
    `index_results` leaves them) against the ground truth of `records` on `backend`."""
    if not records.images:
        raise DetectorError(f"{records.source or 'dataset'}: no images to evaluate")
    run = get_backend(backend)
    truth = truth_from_records(records)
    evaluation = run(truth, results)
    return to_metrics(evaluation, list(records.class_names), list(records.category_ids),
                      truth.instances(records.category_ids, records.class_names),
                      len(results), backend)


def evaluate_predictions(records: DatasetRecords, predictions,
                         backend: str = DEFAULT_BACKEND) -> Metrics:
    """COCO metrics of predictions on `records` (their ground truth: truth.py).

    predictions: a path to a COCO results json (in the dataset's own image and category ids),
    a list of COCO result dicts, or a list with one {"boxes" [N,4] xyxy px, "scores",
    "labels" 0-based} per record (as `evaluate` collects them).
    """
    get_backend(backend)  # an unknown backend fails before any work
    image_ids = {int(r.image_id) for r in records.images}
    category_ids = {int(c) for c in records.category_ids}
    with gc_paused():
        if isinstance(predictions, (str, os.PathLike)):
            results = load_results(predictions, image_ids, category_ids)
        elif predictions and isinstance(predictions[0], dict) and "image_id" in predictions[0]:
            results = index_results([dict(r) for r in predictions], "results", image_ids,
                                    category_ids)
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
    import torch

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
    import torch
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


def evaluate(detector, data, backend: str = DEFAULT_BACKEND, batch_size: int = 8, device=None,
             workers: int | None = None, progress: bool = True, results_path=None) -> Metrics:
    """Evaluate `detector` on `data` (DatasetRecords, or a DetectionDataset without resizing
    transforms: the detector resizes internally) with COCO metrics.

    Inference is batched on `device` (default: CUDA when present, else CPU); images_per_s counts
    the whole loop, data loading included. results_path: also write the COCO results json there.
    """
    get_backend(backend)
    records, dataset = _records_and_dataset(data, detector)
    predictions, seconds = predict_dataset(detector, dataset, batch_size=batch_size,
                                           device=device, workers=workers, progress=progress)
    if results_path is not None:
        Path(results_path).write_text(json.dumps(predictions_to_coco(records, predictions)))
    metrics = evaluate_predictions(records, predictions, backend)
    metrics.images_per_s = len(records.images) / max(seconds, 1e-9)
    return metrics
