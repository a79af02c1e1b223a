"""`torchrun --nproc_per_node 2 -m detector train recipe.yaml`: the real CLI on 2 CPU processes
(gloo) ends where one process with the same global batch ends.

Why they can be equal: the sampler gives the two processes the halves of the batch one process
sees; a fresh model is drawn from train.seed in every process (recipe.py); DDP averages the
processes' gradients, and the classic YOLOv5 loss, which is scaled by the batch size, is scaled
by the global batch under DDP (models/yolov5/loss.py). Its box and class terms are means over the
positives of a batch, so the halves' mean equals the whole batch's mean only when every image has
as many positives: the generated images all carry the same two boxes (the background
noise differs). BatchNorm mixes the images of a batch, so only the head (no BatchNorm) trains.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from detector.checkpoint import load_checkpoint
from detector.cli import main
from detector.config import load_config
from detector.recipe import prepare_run
from test_train_cli import make_yolo_dataset

ROOT = Path(__file__).parent.parent
SIZE = 64
BOXES = ((8, 10, 22, 24), (36, 30, 22, 26))  # (x, y, w, h) pixels of each class, in every image
RUN_FILES = {"config.yaml", "last.pt", "best.pt", "metrics.csv", "training_curves.png",
             "pr_curves.png", "class_ap.png", ".detector-outputs"}


def write_recipe(tmp_path: Path) -> Path:
    data = make_yolo_dataset(tmp_path / "data", train=8, val=2, size=SIZE, boxes=BOXES)
    recipe = {
        "model": {"arch": "yolov5n", "weights": None, "image_size": SIZE,
                  "options": {"image_size": SIZE}},
        "data": {"train": {"source": str(data), "split": "train"},
                 "val": {"source": str(data), "split": "val"}, "augment": []},
        "train": {"stages": [{"epochs": 2, "train": ["head"]}], "batch_size": 4, "lr": 0.1,
                  "warmup_epochs": 0, "amp": False, "workers": 0, "seed": 3, "device": "cpu",
                  "out_dir": str(tmp_path / "one")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(tmp_path):
    recipe = write_recipe(tmp_path)
    torch.manual_seed(123)  # the recipe's seed, not this, must decide the fresh weights
    assert main(["train", str(recipe)]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "detector", "train", str(recipe), f"train.out_dir={tmp_path / 'two'}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    assert {p.name for p in (tmp_path / "two").iterdir()} == RUN_FILES  # rank 0 wrote, once
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert two["epoch"] == 2 and two["scheduler"]["step_count"] == 4  # 8 images / 4 x 2 epochs
    assert one["scheduler"]["step_count"] == 4
    fresh = prepare_run(load_config(recipe)).detector.state_dict()  # what both started from
    for name, value in one["model"].items():
        # Float sums in another order (two halves, then an all-reduce) are all that may differ;
        # here they are bit-equal but for 1.5e-11. Without the global-batch loss scale the head
        # differs by half its movement (up to 5e-3 on its biases).
        torch.testing.assert_close(two["model"][name], value, rtol=1e-6, atol=1e-8, msg=name)
    head_bias = "model.24.m.0.bias"
    assert (one["model"][head_bias] - fresh[head_bias]).abs().max() > 1e-3  # it really trained
    rows_one, rows_two = read_rows(tmp_path / "one" / "metrics.csv"), read_rows(tmp_path / "two" / "metrics.csv")
    assert len(rows_one) == len(rows_two) == 2
    for row_one, row_two in zip(rows_one, rows_two):
        for column in ("loss", "box", "obj", "cls", "lr", "AP", "AP50"):
            assert float(row_two[column]) == pytest.approx(float(row_one[column]), rel=1e-5, abs=1e-8), column


def test_nproc_refuses_before_launching(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    assert main(["train", str(recipe), "--nproc", "0"]) == 2
    assert capsys.readouterr().err == "error: --nproc: expected a number of processes >= 1, got 0\n"
    # what every process would refuse is refused once, here, before torchrun starts
    assert main(["train", str(recipe), "train.sync_bn=true", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train.sync_bn: torch's SyncBatchNorm runs on CUDA devices only")
    assert err.count("\n") == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", str(recipe), "--nproc", "2"]) == 2
    assert "already runs under torchrun" in capsys.readouterr().err
    assert not (tmp_path / "one").exists()
