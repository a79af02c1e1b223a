"""Bad class lists fail before training, in one line naming the data (issue 10): a data set that
names no classes, and one whose single class has no box."""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.cli import main
from test_train_cli import TINY, make_yolo_dataset


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def train(source: Path, out: Path) -> int:
    return main(["train", str(TINY), f"data.train.source={source}", f"data.val.source={source}",
                 f"train.out_dir={out}"])


def test_a_data_set_that_names_no_classes_is_refused(tmp_path, capsys):
    data = make_yolo_dataset(tmp_path / "ds")
    data.write_text(yaml.safe_dump({**yaml.safe_load(data.read_text()), "names": []}))
    assert train(data, tmp_path / "run") == 2
    error = one_line_error(capsys)
    assert str(data) in error and "names no classes" in error, error
    assert not (tmp_path / "run").exists()

    card = tmp_path / "card.yaml"  # the same through a dataset card's empty `classes`
    card.write_text(yaml.safe_dump({"format": "yolo", "root": str(tmp_path / "ds"), "classes": [],
                                    "splits": {"train": {"images": "images/train",
                                                         "labels": "labels/train"}}}))
    assert main(["train", str(TINY), f"data.train.source={card}", "data.val=null",
                 f"train.out_dir={tmp_path / 'run'}"]) == 2
    assert "names no classes" in one_line_error(capsys)


def test_one_class_without_a_box_is_refused(tmp_path, capsys):
    data = make_yolo_dataset(tmp_path / "ds")
    data.write_text(yaml.safe_dump({**yaml.safe_load(data.read_text()), "names": ["blob"]}))
    for labels in (tmp_path / "ds" / "labels").rglob("*.txt"):
        labels.write_text("")
    assert train(data, tmp_path / "run") == 2
    error = one_line_error(capsys)
    assert str(data) in error and "no labelled boxes" in error, error
    assert not (tmp_path / "run").exists()
