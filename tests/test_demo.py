"""`detector demo`: generates the synthetic dataset, reads it back, prints the check summary."""

from __future__ import annotations

import json

from detector.cli import main


def test_demo_generates_reads_back_and_checks(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    card = tmp_path / "data" / "synthetic.yaml"
    assert card.is_file()
    for split in ("train", "val"):
        coco = json.loads((tmp_path / "data" / "annotations" / f"{split}.json").read_text())
        images, boxes = len(coco["images"]), len(coco["annotations"])
        # the check's overview row: source, images, negatives, boxes, ignore, modalities
        row = next(line.split() for line in out.splitlines()
                   if line.startswith(f"synthetic:{split} "))
        assert row[1] == str(images) and row[3] == str(boxes) and row[5] == "rgb+lwir"
    assert "circle" in out and "triangle" in out and "160x128" in out
    assert "0 problem(s)" in out
