"""`detector train CONFIG [key=value ...] [--resume RUN_DIR]`: errors and one real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from detector.checkpoint import load_checkpoint
from detector.cli import main

TINY = Path(__file__).parent.parent / "configs" / "synthetic_tiny.yaml"


def make_yolo_dataset(root: Path, train: int = 4, val: int = 2, size: int = 96,
                      boxes: tuple | None = None) -> Path:
    """Coloured rectangles (class 0: red, class 1: blue) on grey noise, in YOLO layout; at
    random places, or at `boxes` ((x, y, w, h) pixels of class 0, then of class 1) in every image."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(count):
            image = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
            lines = []
            for label in (0, 1):
                w, h = rng.integers(16, 40, 2)
                x, y = rng.integers(0, size - 40, 2)
                if boxes is not None:
                    x, y, w, h = boxes[label]
                image[y:y + h, x:x + w] = (220, 30, 30) if label == 0 else (30, 30, 220)
                lines.append(f"{label} {(x + w / 2) / size} {(y + h / 2) / size} {w / size} {h / size}")
            Image.fromarray(image).save(root / "images" / split / f"{split}{index}.png")
            (root / "labels" / split / f"{split}{index}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "images/train", "val": "images/val", "names": ["red", "blue"]}))
    return root / "data.yaml"


def test_unknown_key_is_refused_with_a_suggestion(tmp_path, capsys):
    assert main(["train", str(TINY), "train.epohcs=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: override 'train.epohcs=3': unknown key 'train.epohcs'")
    assert "did you mean 'train.epochs'?" in err and "Traceback" not in err

    config = tmp_path / "bad.yaml"
    config.write_text(TINY.read_text().replace("  batch_size: 2", "  batchsize: 2"))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:" in err and "did you mean 'train.batch_size'?" in err


def test_resume_needs_a_run_directory(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "give a CONFIG file" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_resume_end_to_end(tmp_path, capsys):
    data = make_yolo_dataset(tmp_path / "data")
    run = tmp_path / "run"
    settings = [f"data.train.source={data}", f"data.val.source={data}", f"train.out_dir={run}",
                "train.epochs=1", "data.augment=[{name: HorizontalFlip, p: 0.5}]"]
    assert main(["train", str(TINY), *settings]) == 0
    out = capsys.readouterr().out
    assert "best mAP50-95" in out and str(run) in out
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["arch"] == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert resolved["train"]["epochs"] == 1 and resolved["train"]["optimizer"] == "sgd"
    first = load_checkpoint(run / "last.pt")
    assert first["epoch"] == 1 and first["class_names"] == ["red", "blue"]
    written = {p.name for p in run.iterdir()}
    assert {"best.pt", "metrics.csv", "training_curves.png", "pr_curves.png", "class_ap.png"} <= written

    # A second run into the same folder is refused; --resume with more epochs continues it.
    assert main(["train", str(TINY), *settings]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    final = load_checkpoint(run / "last.pt")
    assert final["epoch"] == 2 and len(final["history"]) == 2
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
    from detector.models.loading import load_model

    detector = load_model(run / "last.pt")  # the run's checkpoint rebuilds the trained network
    assert detector.arch == "fasterrcnn_mobilenet_v3_large_320_fpn" and not detector.training
    assert detector.class_names == ["red", "blue"] and detector.build_args()["min_size"] == 96
    for name, value in detector.state_dict().items():
        assert (value == final["model"][name]).all(), name
    changed = [k for k, v in first["model"].items()
               if v.dtype.is_floating_point and not (v == final["model"][k]).all()]
    assert changed, "the resumed epoch changed no weight"
