"""Zero-shot: the COCO yolov5n.pt on HIT-UAV thermal images, classes mapped by name, no training.

`detector eval` adapts the RGB stem to the 1-channel data (`sum`) and `--class-map auto` copies
the COCO rows of person, car and bicycle: those classes are found before any training; the
unmapped OtherVehicle starts at YOLOv5's class prior, so it fires only where COCO objectness
does, and scores below the mapped person and car.
"""

from __future__ import annotations

import json

import pytest

from detector.cli import main


@pytest.mark.shared_data
@pytest.mark.slow
def test_yolov5n_zero_shot_on_hit_uav_finds_the_mapped_classes(tmp_path, shared_data,
                                                               shared_weights, monkeypatch):
    monkeypatch.setenv("DETECTOR_DATA", str(shared_data))
    monkeypatch.setenv("DETECTOR_WEIGHTS", str(shared_weights))
    out = tmp_path / "metrics.json"
    assert main(["eval", "--model", "yolov5n.pt", "--data", "hit_uav_mini", "--split", "val",
                 "--class-map", "auto", "--device", "cpu", "--json", str(out)]) == 0
    per_class = json.loads(out.read_text())["per_class"]
    # measured: AP50 Person 0.100, Car 0.168, Bicycle 0.0003, OtherVehicle (fresh) 0.003
    assert per_class["Person"]["AP50"] > 0.05 and per_class["Car"]["AP50"] > 0.1
    assert per_class["Bicycle"]["AP50"] > 0
    other = per_class["OtherVehicle"]["AP50"]
    assert other < min(per_class["Person"]["AP50"], per_class["Car"]["AP50"])
