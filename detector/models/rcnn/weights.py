"""Pretrained weights into a Faster R-CNN (rcnn/adapter.py): an ImageNet classification
state_dict into the backbone body, or a torchvision Faster R-CNN state_dict into the whole model
(torchvision's 91-output COCO head cut to background + the 80 classes in COCO_CLASSES order).
Every file is read with torch.load(weights_only=True); mismatched keys are a WeightsError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from detector.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from detector.errors import WeightsError

if TYPE_CHECKING:
    from detector.models.rcnn.adapter import RCNNDetector


def _load_state(module: nn.Module, state, path: Path, what: str,
                ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load `state` into `module`, naming `path` and the first mismatching keys on failure."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state_dict of tensors ({what})")
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        message = str(e).strip().splitlines()
        raise WeightsError(f"{path}: does not fit {what}: {' '.join(message[1:3])}") from e
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{path}: does not fit {what}: missing keys {missing[:3]}, "
                           f"unexpected keys {result.unexpected_keys[:3]}")


def _read(weights: str) -> tuple[Path, object]:
    from detector.checkpoint import read_weights_only
    from detector.weights import resolve

    path = Path(resolve(weights))
    return path, read_weights_only(path)


def load_backbone_weights(detector: RCNNDetector, backbone_weights: str) -> None:
    """Load ImageNet classification weights (torchvision key names) into the backbone body."""
    path, state = _read(backbone_weights)
    if isinstance(state, dict):  # mobilenet bodies hold `features` children under their index
        state = {k.removeprefix("features."): v for k, v in state.items()}
    _load_state(detector.model.backbone.body, state, path,
                f"the {detector.arch} backbone (torchvision classification key names)",
                ignore_prefixes=("fc.", "classifier."))


def load_detector_weights(detector: RCNNDetector, weights: str) -> None:
    """Load a torchvision Faster R-CNN state_dict and set the class names it was trained on."""
    from detector.weights import weights_class_names

    path, state = _read(weights)
    rows = state.get("roi_heads.box_predictor.cls_score.weight") if isinstance(state, dict) else None
    if rows is None:
        raise WeightsError(f"{path}: not a torchvision Faster R-CNN state_dict "
                           f"(no roi_heads.box_predictor.cls_score.weight)")
    num_rows = rows.shape[0]
    names = weights_class_names(weights)
    if names is None and num_rows == max(COCO_CATEGORY_IDS) + 1:
        names = list(COCO_CLASSES)  # torchvision's COCO layout: 91 outputs
    if names is None:
        raise WeightsError(f"{path}: unknown class names for a {num_rows}-output head; use a "
                           f"registered weights name or a run checkpoint")
    in_features = detector.model.roi_heads.box_predictor.cls_score.in_features
    detector.model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_rows)
    _load_state(detector.model, state, path, f"{detector.arch}")
    if num_rows == len(names) + 1:
        detector.class_names = list(names)
    elif list(names) == list(COCO_CLASSES) and num_rows == max(COCO_CATEGORY_IDS) + 1:
        # Cut the 91 category-id rows to background + the 80 classes, in COCO_CLASSES order.
        rows_by_label = {0: 0, **{i + 1: cid for i, cid in enumerate(COCO_CATEGORY_IDS)}}
        detector.rebuild_predictor(len(names) + 1, rows_by_label)
        detector.class_names = list(names)
    else:
        raise WeightsError(f"{path}: its head has {num_rows} outputs, which fits neither "
                           f"{len(names)} classes + background nor torchvision's COCO layout")
