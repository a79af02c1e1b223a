"""train.loggers: csv (metrics.csv and the PNG plots) and tensorboard (an events file whose
scalars are metrics.csv's numbers and whose images are the best evaluation's plots)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from detector.checkpoint import load_checkpoint
from detector.cli import main
from test_train_cli import make_yolo_dataset


def write_recipe(tmp_path: Path) -> Path:
    data = make_yolo_dataset(tmp_path / "data", size=64)
    recipe = {
        "model": {"arch": "yolov5n", "weights": None, "image_size": 64,
                  "options": {"image_size": 64}},
        "data": {"train": {"source": str(data), "split": "train"},
                 "val": {"source": str(data), "split": "val"}},
        "train": {"epochs": 2, "batch_size": 2, "lr": 0.01, "warmup_epochs": 0.5, "amp": False,
                  "workers": 0, "device": "cpu", "out_dir": str(tmp_path / "run")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def read_events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


@pytest.mark.slow
def test_tensorboard_scalars_equal_metrics_csv_and_the_plots_are_images(tmp_path):
    recipe = write_recipe(tmp_path)
    assert main(["train", str(recipe), "train.loggers=[csv, tensorboard]"]) == 0
    run = tmp_path / "run"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2

    events = read_events(run)
    expected_tags = set()
    for column in rows[0]:
        if column in ("epoch", "stage"):
            continue
        tag = f"{'val' if column in ('AP', 'AP50') else 'train'}/{column}"
        expected_tags.add(tag)
        logged = [(event.step, event.value) for event in events.Scalars(tag)]
        assert [step for step, _ in logged] == [int(row["epoch"]) for row in rows], tag
        for (_, value), row in zip(logged, rows):  # csv keeps 6 significant digits
            assert value == pytest.approx(float(row[column]), rel=1e-5, abs=1e-12), tag
    assert {"train/loss", "train/lr", "val/AP", "val/AP50"} <= expected_tags
    assert set(events.Tags()["scalars"]) == expected_tags

    best_epoch = load_checkpoint(run / "last.pt")["best_epoch"]
    for name in ("pr_curves", "class_ap"):
        images = events.Images(f"best/{name}")  # one per new best epoch, the last at the best
        steps = [image.step for image in images]
        assert steps == sorted(set(steps)) and steps[-1] == best_epoch, steps
        image = images[-1]
        with Image.open(run / f"{name}.png") as png:  # the same figure as the csv logger's
            assert (image.width, image.height) == png.size
            assert np.asarray(png.convert("RGB")).std() > 0


def test_tensorboard_alone_and_an_unknown_logger(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["train", str(recipe), "train.loggers=[tensorbord]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.loggers" in err and "tensorboard" in err
    assert not (tmp_path / "run").exists()

    assert main(["train", str(recipe), "train.loggers=[tensorboard]", "train.epochs=1"]) == 0
    run = tmp_path / "run"
    assert not (run / "metrics.csv").exists() and not (run / "training_curves.png").exists()
    assert [event.step for event in read_events(run).Scalars("train/loss")] == [1]
