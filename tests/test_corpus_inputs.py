"""Hostile corpus, part 2 (issue 16): broken images and labels, recipes with typos, wrong types
and negative numbers, a device the machine lacks, command-line misuse, and Ctrl-C during
training. Each is one line naming the file (and line), key or flag, exit non-zero, no traceback,
nothing of the user's changed; what the tool may go on with is a warning or a problem in
`data check`, never silence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detector.cli import main
from hostile import digest, error_lines, one_line_error
from test_train_cli import TINY, make_yolo_dataset

ROOT = Path(__file__).resolve().parents[1]


def _replace_image(path: Path, suffix: str, write) -> Path:
    path.unlink()
    write(path.with_suffix(suffix))
    return path.with_suffix(suffix)


def _overwrite(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


UNREADABLE = {  # image -> the file that replaces it; training's decoder cannot use any of them
    "truncated": lambda p: _overwrite(p, p.read_bytes()[:60]),
    "zero-byte": lambda p: _overwrite(p, b""),
    "random-bytes": lambda p: _overwrite(p, bytes(range(7, 256, 3)) * 9),
    "float32-tiff": lambda p: _replace_image(p, ".tiff", lambda q: cv2.imwrite(
        str(q), np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_unreadable_images_fail_check_and_training_alike(tmp_path, capsys, kind):
    # every YOLO family imports ultralytics, which replaces PIL's Image.open with one that
    # tries to install pi-heif for a file PIL cannot identify: the same line must come out
    import ultralytics.utils.patches  # noqa: F401

    data = make_yolo_dataset(tmp_path / "ds", train=2, val=1, size=64)
    bad = UNREADABLE[kind](tmp_path / "ds" / "images" / "train" / "train0.png")
    before = digest(tmp_path)
    assert main(["data", "check", str(data), "--split", "train"]) == 1
    assert str(bad) in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", str(TINY), f"data.train.source={data}", "data.val=null",
                 f"train.out_dir={run}"]) == 2
    one_line_error(capsys, bad)
    assert digest(tmp_path) == before and not run.exists()


ODD_BUT_USABLE = {  # image modes a user's folder holds; each loads as [3,H,W] in 0..1
    "two-channel": lambda p: Image.fromarray(np.full((64, 64), 120, np.uint8)).convert("LA").save(p),
    "cmyk-jpeg": lambda p: _replace_image(p, ".jpg", lambda q: Image.new("CMYK", (64, 64),
                                                                           (0, 90, 90, 0)).save(q)),
    "palette": lambda p: Image.new("RGB", (64, 64), (200, 20, 20)).convert("P").save(p),
    "16-bit-grey": lambda p: cv2.imwrite(str(p), np.full((64, 64), 40000, np.uint16)),
}


@pytest.mark.parametrize("kind", list(ODD_BUT_USABLE))
def test_odd_image_modes_load_as_the_model_expects(tmp_path, capsys, kind):
    from detector.data.dataset import DetectionDataset
    from detector.data.readers import read_dataset

    data = make_yolo_dataset(tmp_path / "ds", train=2, val=1, size=64)
    ODD_BUT_USABLE[kind](tmp_path / "ds" / "images" / "train" / "train0.png")
    assert main(["data", "check", str(data), "--split", "train"]) == 0
    records = read_dataset(data, split="train")
    odd = next(i for i, r in enumerate(records.images) if r.stem == "train0")
    image = DetectionDataset(records)[odd][0]
    assert image.shape == (3, 64, 64) and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert float(image.max()) > 0.05  # not read as black


LABEL_LINES = {  # label line of train0 -> the problem `data check` reports at train0.txt:1
    "box-outside": ("0 1.5 1.5 0.2 0.2", "zero_size_box"),
    "negative-width": ("0 0.5 0.5 -0.2 0.2", "zero_size_box"),
    "nan": ("0 nan 0.5 0.2 0.2", "bad_label_line"),
    "unknown-class": ("7 0.5 0.5 0.2 0.2", "unknown_class"),
    "negative-class": ("-1 0.5 0.5 0.2 0.2", "unknown_class"),
    "strings": ("0 x y w h", "bad_label_line"),
    "four-fields": ("0 0.5 0.5 0.2", "bad_label_line"),
}


@pytest.mark.parametrize("kind", list(LABEL_LINES))
def test_bad_boxes_and_classes_name_file_and_line(tmp_path, capsys, kind):
    data = make_yolo_dataset(tmp_path / "ds", train=2, val=1, size=64)
    label = tmp_path / "ds" / "labels" / "train" / "train0.txt"
    line, problem = LABEL_LINES[kind]
    label.write_text(line + "\n")
    assert main(["data", "check", str(data), "--split", "train"]) == 1
    assert f"{label}:1: {problem}" in capsys.readouterr().out


@pytest.mark.parametrize("change, expected", [
    ({"annotations": [[1, 2, 3]]}, "annotations[0]: expected an object"),
    ({"annotations": {"id": 1}}, "'annotations': expected a list"),
    ({"images": [{"id": 1, "file_name": "a.png", "width": "wide", "height": 20}]},
     "image id 1: expected width and height as numbers"),
])
def test_malformed_coco_entries_are_one_line(tmp_path, capsys, change, expected):
    import json

    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}],
            "annotations": [], "categories": [{"id": 1, "name": "a"}], **change}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    assert main(["data", "check", str(path)]) == 2
    one_line_error(capsys, path, expected)


def test_duplicate_stems_and_missing_partners_are_said(tmp_path, capsys):
    from detector.data.synthetic import make_synthetic_dataset

    data = make_yolo_dataset(tmp_path / "ds", train=2, val=1, size=64)
    Image.new("RGB", (64, 64)).save(tmp_path / "ds" / "images" / "train" / "train0.jpg")
    assert main(["data", "check", str(data), "--split", "train"]) == 0  # a warning, usable
    left_out = tmp_path / "ds" / "images" / "train" / "train0.png"  # sorted after train0.jpg
    assert f"{left_out}: duplicate_stem: shares its stem with train0.jpg" in capsys.readouterr().out
    card = make_synthetic_dataset(tmp_path / "pairs", num_train=3, num_val=0, size=(48, 48))
    lonely = sorted((tmp_path / "pairs" / "lwir" / "train").glob("*.png"))[0]
    lonely.unlink()
    assert main(["data", "check", str(card), "--split", "train"]) == 1
    out = capsys.readouterr().out
    assert "missing_pair" in out and lonely.stem in out


# (id, the recipe's text replaced, by, the key the error must name); the recipe is TINY
RECIPE_CASES = [
    ("typo-top", "train:\n", "trian:\n", "'trian'"),
    ("typo-model", "  arch:", "  arh:", "model.arh"),
    ("typo-data", "  val:", "  vall:", "data.vall"),
    ("typo-source", "split: train}", "splt: train}", "data.train.splt"),
    ("typo-train", "  lr:", "  lrr:", "train.lrr"),
    ("typo-family-option", "min_size: 96", "min_sise: 96", "min_sise"),
    ("typo-stage", "  epochs: 2\n", "  stages: [{epochs: 1, trian: [head]}]\n", "train.stages.0.trian"),
    ("type-epochs", "epochs: 2", "epochs: two", "train.epochs"),
    ("type-batch", "batch_size: 2", "batch_size: 2.5", "train.batch_size"),
    ("type-model", "model:\n", "model: fasterrcnn\nmodel_:\n", "model_"),
    ("type-modalities", "\ntrain:\n", "\n  modalities: rgb\ntrain:\n", "data.modalities"),
    ("type-stages", "  epochs: 2\n", "  stages: head\n", "train.stages"),
    ("type-option", "min_size: 96", "min_size: big", "model.options"),
    ("negative-epochs", "epochs: 2", "epochs: 0", "train.epochs"),
    ("negative-lr", "lr: 0.005", "lr: -0.005", "train.lr"),
    ("negative-batch", "batch_size: 2", "batch_size: -1", "train.batch_size"),
    ("negative-workers", "workers: 0", "workers: -1", "train.workers"),
    ("negative-warmup", "warmup_epochs: 0.5", "warmup_epochs: -3", "train.warmup_epochs"),
    ("negative-size", "min_size: 96", "min_size: -96", "model.options.min_size"),
    ("nan-lr", "lr: 0.005", "lr: .nan", "train.lr"),
    ("channels-vs-data", "  weights: null\n", "  weights: null\n  in_channels: 2\n",
     "model.in_channels"),
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_yolo_dataset(tmp_path_factory.mktemp("recipes") / "ds", train=2, val=1, size=64)


@pytest.mark.parametrize("case, old, new, key", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_recipe_mistakes_name_the_key(tmp_path, capsys, tiny_data, case, old, new, key):
    text = TINY.read_text()
    assert old in text
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text.replace(old, new, 1))
    before = digest(tmp_path, tiny_data.parent)
    run = tmp_path / "run"
    assert main(["train", str(recipe), f"data.train.source={tiny_data}",
                 f"data.val.source={tiny_data}", f"train.out_dir={run}"]) == 2
    one_line_error(capsys, key)
    assert digest(tmp_path, tiny_data.parent) == before and not run.exists()


USAGE = [["trian"], ["predict", "--model"], ["data", "check"], ["weights", "show"],
         ["eval", "--data", "x", "--workers", "many"], ["bench"]]


@pytest.mark.parametrize("argv", USAGE, ids=["-".join(a) for a in USAGE])
def test_command_line_misuse_is_one_line(capsys, argv):
    assert main(argv) == 2
    one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["predict", "eval", "train"])
def test_cuda_without_cuda_names_the_flag(tmp_path, capsys, tiny_data, command):
    argv = {"predict": ["predict", "--model", "m.pt", "--source", str(tmp_path), "--out",
                        str(tmp_path / "o"), "--device", "cuda"],
            "eval": ["eval", "--model", "m.pt", "--data", str(tiny_data), "--device", "cuda:1"],
            "train": ["train", str(TINY), f"data.train.source={tiny_data}", "data.val=null",
                      "train.device=cuda", f"train.out_dir={tmp_path / 'run'}"]}[command]
    assert main(argv) == 2
    one_line_error(capsys, "train.device" if command == "train" else "--device")
    assert not (tmp_path / "run").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ctrl_c_during_training_then_resume(tmp_path):
    """SIGINT after the first checkpoint: exit 130, one line, last.pt whole; --resume ends the
    run with every epoch. The poll waits for a file, it measures no time."""
    from detector.checkpoint import load_checkpoint

    data = make_yolo_dataset(tmp_path / "ds", train=2, val=1, size=64)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "detector.cli", "train", str(TINY),
               f"data.train.source={data}", f"data.val.source={data}", "train.epochs=30",
               "model.options={min_size: 64, max_size: 64}", f"train.out_dir={run}"]
    # a child started from a background job inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give it the default disposition a terminal would
    # stderr to a file, not a pipe nobody drains until the end: a child blocked writing its
    # progress bars into a full pipe can lose the KeyboardInterrupt raised inside that write
    stderr = (tmp_path / "stderr.txt").open("w")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                           signal.SIG_DFL))
    try:
        while not (run / "last.pt").exists() and process.poll() is None:
            try:
                process.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=300)
    finally:
        process.kill()
        stderr.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130, err
    assert error_lines(err) == ["interrupted"] and "Traceback" not in err
    saved = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= saved < 30
    resumed = subprocess.run([sys.executable, "-m", "detector.cli", "train", "--resume", str(run),
                              "train.epochs=" + str(saved + 1)], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "last.pt")["epoch"] == saved + 1
