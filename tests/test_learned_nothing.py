"""A run that learned nothing says so: a warning line, a `warning` column in metrics.csv and the
`warnings` of fit's result (train/learned_nothing.py)."""

from __future__ import annotations

import csv

import pytest
import torch

from detector.train.engine import fit
from detector.train.learned_nothing import learned_nothing
from toy_detector import ScriptedMetrics, ToyDataset, ToyDetector, box_error_metric, collate


class Evaluation(ScriptedMetrics):
    def __init__(self, ap: float, predictions: int, images: int = 4):
        super().__init__(ap)
        self.num_predictions, self.num_images = predictions, images


@pytest.mark.parametrize("ap, predictions, epoch, warned", [
    (0.0, 0, 1, "no detection"),  # none at all: warned even during warmup
    (0.0, 12, 1, None),           # AP 0 in the warmup epoch is expected
    (0.0, 12, 2, "AP is 0"),      # after the warmup it is not
    (0.01, 12, 2, None),          # something was learned
    (-1.0, 12, 3, None),          # COCO's -1: nothing to measure, not nothing learned
])
def test_rule(ap, predictions, epoch, warned):
    warning = learned_nothing(Evaluation(ap, predictions), epoch, warmup_epochs=1.0)
    if warned is None:
        assert warning is None
    else:
        assert warned in warning and f"epoch {epoch}" in warning
        assert "confidence threshold" in warning and "train.lr" in warning


def test_a_fractional_warmup_covers_its_last_epoch():
    assert learned_nothing(Evaluation(0.0, 5), 2, warmup_epochs=1.5) is None
    assert learned_nothing(Evaluation(0.0, 5), 3, warmup_epochs=1.5) is not None


def _fit(tmp_path, scores, capsys):
    evaluations = iter(scores)

    def scripted(detector, data, **kwargs):
        box_error_metric(detector, data)
        return Evaluation(*next(evaluations))

    torch.manual_seed(0)
    result = fit(ToyDetector(["a", "b"]), ToyDataset(8, noise=0.1), ToyDataset(4, seed=1),
                 out_dir=tmp_path, epochs=len(scores), batch_size=2, lr=0.05, warmup_epochs=1,
                 collate_fn=collate, evaluate_fn=scripted, show_progress=False, workers=0)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return result, rows, capsys.readouterr().err


def test_fit_warns_and_records_a_run_that_learned_nothing(tmp_path, capsys):
    result, rows, err = _fit(tmp_path, [(0.0, 0), (0.0, 3), (0.0, 3)], capsys)
    assert len(result["warnings"]) == 3
    assert "no detection" in result["warnings"][0] and "AP is 0" in result["warnings"][2]
    assert [row["warning"] != "" for row in rows] == [True, True, True]
    assert err.count("warning: epoch") == 3


def test_fit_is_quiet_when_something_was_learned(tmp_path, capsys):
    result, rows, err = _fit(tmp_path, [(0.0, 3), (0.2, 3)], capsys)
    assert result["warnings"] == []
    assert "warning" not in rows[0]  # no column at all when nothing was wrong
    assert "warning:" not in err


def test_bench_report_shows_a_run_that_learned_nothing(tmp_path):
    """results.md gets a Warnings section naming the run, results.csv a warnings column."""
    from detector.bench.report import write_csv, write_markdown

    def result(name, warnings):
        return {"name": name, "group": name, "arch": "toy", "init": "scratch",
                "strategy": "finetune_all", "seed": 0, "epochs": 2, "best_epoch": 2,
                "AP": 0.0 if warnings else 0.4, "AP50": 0.0 if warnings else 0.7,
                "per_class": {"a": {"AP": 0.0, "AP50": 0.0}}, "train_s": 1.0,
                "train_images_per_s": 8.0, "eval_images_per_s": 20.0, "params": 10,
                "test": "toy:val", "warnings": warnings}

    warning = learned_nothing(Evaluation(0.0, 0, images=6), 2, 1.0, split="test",
                              where="silent: test")
    results = [result("silent", [warning]), result("fine", [])]
    write_markdown(results, tmp_path / "results.md", [])
    markdown = (tmp_path / "results.md").read_text()
    assert "## Warnings" in markdown
    assert f"- **silent**: {warning}" in markdown and "**fine**" not in markdown
    assert "no detection on the 6 test images" in warning
    write_csv(results, tmp_path / "results.csv")
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = {row["run"]: row["warnings"] for row in csv.DictReader(handle)}
    assert rows == {"silent": warning, "fine": ""}
