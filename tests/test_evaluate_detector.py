"""`evaluate` runs a detector over records or a dataset, maps its boxes back to the original
images and scores them (detector/evaluation/coco.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from detector.evaluation import evaluate, evaluate_predictions
from test_evaluation import make_records
from toy_detector import CentreBoxDetector


class ScaledDataset(Dataset):
    """The DetectionDataset contract: (image [3,H,W], target with index, scale and pad); each
    image is returned at `scale` of its original size, shifted by `pad`."""

    def __init__(self, records, scale=1.0, pad=(0, 0)):
        self.records, self.scale, self.pad = records, scale, pad

    def __len__(self):
        return len(self.records.images)

    def __getitem__(self, i):
        record = self.records.images[i]
        width = int(record.width * self.scale) + 2 * self.pad[0]
        height = int(record.height * self.scale) + 2 * self.pad[1]
        target = {"index": i, "image_id": record.image_id, "scale": (self.scale, self.scale),
                  "pad": self.pad, "orig_size": (record.height, record.width)}
        return torch.zeros(3, height, width), target


def centre_records(count=5):
    # the middle half of a 200 x 160 image is [50, 40, 150, 120]
    return make_records([([[50, 40, 150, 120]], [0], []) for _ in range(count)])


@pytest.mark.parametrize("scale, pad", [(1.0, (0, 0)), (0.5, (8, 4))])
def test_evaluate_runs_the_detector_and_maps_boxes_back(scale, pad):
    records = centre_records()
    detector = CentreBoxDetector()
    detector.train()
    # with scale and pad, the box the detector sees is the middle half of the padded image:
    # only when there is no padding does it map back onto the ground truth exactly
    metrics = evaluate(detector, ScaledDataset(records, scale, pad), batch_size=2,
                       device="cpu", progress=False)
    assert detector.batches == [2, 2, 1]
    assert detector.training  # mode restored
    assert metrics.images_per_s > 0 and metrics.num_images == 5
    if pad == (0, 0):
        assert metrics.stats["AP"] == pytest.approx(1.0)
    else:
        # middle half of (100 + 16) x (80 + 8) is [29, 22, 87, 66]; minus pad, / 0.5:
        # [42, 36, 158, 124] against [50, 40, 150, 120]: IoU 8000 / 10208 = 0.784
        assert metrics.stats["AP50"] == pytest.approx(1.0)
        assert metrics.stats["AP"] == pytest.approx(0.6)  # hits at IoU 0.50 .. 0.75


def test_evaluate_writes_the_results_json(tmp_path):
    records = centre_records(3)
    path = tmp_path / "results.json"
    metrics = evaluate(CentreBoxDetector(), ScaledDataset(records), backend="pycocotools",
                       device="cpu", progress=False, results_path=path)
    results = json.loads(path.read_text())
    assert [r["image_id"] for r in results] == [10, 11, 12]
    assert results[0]["bbox"] == [50.0, 40.0, 100.0, 80.0] and results[0]["category_id"] == 1
    assert evaluate_predictions(records, path).stats == metrics.stats


def test_evaluate_refuses_other_data():
    with pytest.raises(TypeError, match="DatasetRecords or a DetectionDataset"):
        evaluate(CentreBoxDetector(), [1, 2, 3], device="cpu", progress=False)


def test_evaluate_loads_records_at_their_original_size(tmp_path):
    import cv2

    records = centre_records(3)
    for record in records.images:
        path = tmp_path / f"{record.image_id}.png"
        cv2.imwrite(str(path), np.zeros((record.height, record.width, 3), np.uint8))
        record.paths = {"rgb": path}
    detector = CentreBoxDetector()
    seen = []
    detector.register_forward_pre_hook(lambda module, args: seen.extend(i.shape for i in args[0]))
    metrics = evaluate(detector, records, batch_size=4, device="cpu", progress=False)
    assert seen == [torch.Size([3, 160, 200])] * 3
    assert metrics.stats["AP"] == pytest.approx(1.0)
