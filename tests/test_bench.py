"""`detector bench`: the bench file format, its validation, and a real bench end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from detector.bench.run import describe_strategy
from detector.bench.plan import config_hash, plan_bench
from detector.cli import main
from detector.bench.report import group_rows
from detector.tables import markdown_table
from detector.config import SourceConfig
from detector.data.readers import read_dataset
from detector.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"
TINY = CONFIGS / "synthetic_tiny.yaml"


def write_bench(path: Path, bench: dict) -> Path:
    path.write_text(yaml.safe_dump(bench, sort_keys=False))
    return path


def base_bench(**extra) -> dict:
    return {"base": str(TINY),
            "data": {"train": {"source": "data/synthetic", "split": "train"},
                     "val": {"source": "data/synthetic", "split": "val"},
                     "test": {"source": "data/synthetic", "split": "test"}},
            **extra}


def test_runs_times_grid_with_overrides(tmp_path):
    bench = write_bench(tmp_path / "bench.yaml", base_bench(
        runs=[{"name": "scratch"},
              {"name": "top", "overrides": {"train.preset": "finetune_top"}},
              {"name": "staged", "overrides": {"train.stages": [
                  {"epochs": 1, "train": ["head"]},
                  {"epochs": 2, "train": ["head", "neck"], "lr_mult": {"neck": 0.5}}]}}],
        grid={"train.seed": [0, 1]}))
    plan = plan_bench([bench], ["train.lr=0.002"], out_dir=tmp_path / "out")
    names = [run.name for run in plan.runs]
    assert names == ["scratch_seed0", "scratch_seed1", "top_seed0", "top_seed1",
                     "staged_seed0", "staged_seed1"]
    by_name = {run.name: run for run in plan.runs}
    assert [by_name[n].config.train.seed for n in names] == [0, 1, 0, 1, 0, 1]
    assert {run.group for run in plan.runs} == {"scratch", "top", "staged"}
    # Each run trains into its own folder under the bench folder; CLI overrides reach every run.
    assert all(run.config.train.out_dir == str(tmp_path / "out" / run.name) for run in plan.runs)
    assert all(run.config.train.lr == 0.002 for run in plan.runs)
    assert describe_strategy(by_name["top_seed0"].config) == "finetune_top"
    # Stages replace the base's train.epochs (2 in synthetic_tiny) with their own sum.
    staged = by_name["staged_seed1"].config.train
    assert staged.preset is None and staged.epochs is None and len(staged.stages) == 2
    assert dict(staged.stages[1].lr_mult) == {"neck": 0.5}
    assert all(run.test.split == "test" for run in plan.runs)
    # Different configs, different hashes; the run folder does not enter the hash.
    assert len({run.results_hash for run in plan.runs}) == 6
    moved = plan_bench([bench], ["train.lr=0.002"], out_dir=tmp_path / "elsewhere")
    assert [run.results_hash for run in moved.runs] == [run.results_hash for run in plan.runs]


def test_inline_base_and_train_configs(tmp_path):
    base = yaml.safe_load(TINY.read_text())
    bench = write_bench(tmp_path / "inline.yaml", {"base": base, "out_dir": str(tmp_path / "o")})
    plan = plan_bench([bench])
    assert [run.name for run in plan.runs] == ["base"] and plan.out_dir == tmp_path / "o"
    assert plan.runs[0].test.split == "val"  # no data.test: the shared data.val

    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("lr: 0.005", "lr: 0.001"))
    plan = plan_bench([TINY, other], ["train.epochs=1"])
    assert [run.name for run in plan.runs] == ["synthetic_tiny", "other"]
    assert [run.config.train.lr for run in plan.runs] == [0.005, 0.001]
    assert plan.out_dir == Path("runs/bench/synthetic_tiny")
    assert plan.runs[0].train_hash != plan.runs[1].train_hash


def test_config_hash_ignores_where_the_run_lives():
    config = {"model": {"arch": "a"}, "train": {"lr": 0.1, "out_dir": "x", "workers": 2}}
    moved = {"model": {"arch": "a"}, "train": {"lr": 0.1, "out_dir": "y", "workers": 0}}
    changed = {"model": {"arch": "a"}, "train": {"lr": 0.2, "out_dir": "x", "workers": 2}}
    assert config_hash(config) == config_hash(moved) != config_hash(changed)


@pytest.mark.parametrize("bench, message", [
    (base_bench(runz=[]), "unknown key 'runz'; did you mean 'runs'?"),
    (base_bench(runs=[{"name": "a", "overides": {}}]),
     "unknown key 'runs.0.overides'; did you mean 'runs.0.overrides'?"),
    (base_bench(runs=[{"name": "a", "overrides": {"train.presett": "finetune_top"}}]),
     "run 'a': override 'train.presett=\"finetune_top\"': unknown key 'train.presett'; "
     "did you mean 'train.preset'?"),
    (base_bench(runs=[{"name": "a", "overrides": {"train.preset": "all"}}]),
     "train.preset: expected 'feature_extraction' or 'finetune_top' or 'finetune_all'"),
    (base_bench(runs=[{"name": "a"}, {"name": "a"}]), "run names must be unique; repeated: a"),
    (base_bench(runs=[{"name": "../up"}]), "runs.0.name: expected a folder name"),
    (base_bench(grid={"train.seed": 3}), "grid.train.seed: expected a list of anything, got 3"),
    (base_bench(grid={"train.seed": []}), "grid.train.seed: expected a non-empty list"),
    (base_bench(runs=[{"name": 7}]), "runs.0.name: expected a string, got 7"),
    (base_bench(runs=[{"name": "a", "overrides": ["train.seed=1"]}]),
     "runs.0.overrides: expected a mapping of anything"),
    (base_bench(out_dir=["x"]), "out_dir: expected a string or null"),
    ({"runs": [{"name": "a"}]}, "missing key 'base'"),
])
def test_bench_file_errors_name_the_file(tmp_path, capsys, bench, message):
    path = write_bench(tmp_path / "bench.yaml", bench)
    with pytest.raises(ConfigError, match=None) as caught:
        plan_bench([path])
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    # The command line says the same in one line, exit 2, no traceback.
    assert main(["bench", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_data_section_is_checked(tmp_path):
    bench = base_bench()
    bench["data"]["tset"] = "x"
    with pytest.raises(ConfigError, match="unknown key 'data.tset'; did you mean 'data.test'?"):
        plan_bench([write_bench(tmp_path / "a.yaml", bench)])
    bench = base_bench()
    bench["data"]["test"] = {"source": "s", "splt": "test"}
    with pytest.raises(ConfigError, match="did you mean 'data.test.split'?"):
        plan_bench([write_bench(tmp_path / "b.yaml", bench)])
    bench = base_bench()
    del bench["data"]["test"], bench["data"]["val"]
    with pytest.raises(ConfigError, match="no test split"):
        plan_bench([write_bench(tmp_path / "c.yaml", bench)])


def test_test_split_from_the_command_line(tmp_path):
    bench = base_bench()
    del bench["data"]["test"], bench["data"]["val"]
    path = write_bench(tmp_path / "bench.yaml", bench)
    plan = plan_bench([path], test=SourceConfig(source="elsewhere", split="test"))
    assert plan.runs[0].test == SourceConfig(source="elsewhere", split="test")
    # Train configs scored on different val splits have no common test split.
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("split: val", "split: train"))
    with pytest.raises(ConfigError, match="no test split"):
        plan_bench([TINY, other])
    assert len(plan_bench([TINY, other], test=SourceConfig(source="s")).runs) == 2


def test_grid_summary_is_mean_and_spread_per_run():
    results = [{"name": f"a_seed{i}", "group": "a", "AP": ap, "AP50": ap50}
               for i, (ap, ap50) in enumerate([(0.2, 0.5), (0.4, 0.7)])]
    results.append({"name": "b", "group": "b", "AP": 0.1, "AP50": None})
    headers, rows = group_rows(results)
    assert headers[:3] == ["run", "runs", "mAP50-95 mean"]
    assert rows[0][:3] == ["a", 2, pytest.approx(0.3)] and rows[0][3] == pytest.approx(0.1414, abs=1e-4)
    assert rows[0][4:] == [pytest.approx(0.6), pytest.approx(0.1414, abs=1e-4)]
    assert rows[1] == ["b", 1, 0.1, None, None, None]
    assert group_rows(results[2:]) is None  # nothing repeated: no summary
    table = markdown_table(headers, rows)
    assert table.splitlines()[1] == "|---|---:|---:|---:|---:|---:|"
    assert "| a | 2 | 0.300 | 0.141 | 0.600 | 0.141 |" in table and "| b | 1 | 0.100 | - |" in table


def test_a_bench_file_must_come_alone(tmp_path, capsys):
    bench = write_bench(tmp_path / "bench.yaml", base_bench(runs=[{"name": "a"}]))
    with pytest.raises(ConfigError, match="must be the only CONFIG"):
        plan_bench([bench, TINY])
    assert main(["bench", str(TINY), "train.epohcs=1"]) == 2
    assert "did you mean 'train.epochs'?" in capsys.readouterr().err


def test_shipped_bench_configs_are_valid():
    for name in ("bench_synthetic.yaml", "bench_bccd.yaml"):
        plan = plan_bench([CONFIGS / name])
        assert len(plan.runs) >= 2
        assert len({run.results_hash for run in plan.runs}) == len(plan.runs)


def test_config_hash_leaves_out_nulls():
    assert config_hash({"model": {"arch": "a", "new_option": None}}) == config_hash({"model": {"arch": "a"}})


def synthetic_bench_arguments(tmp_path: Path) -> list[str]:
    """`detector bench configs/bench_synthetic.yaml` on a tiny generated copy of the dataset."""
    from detector.data.synthetic import make_synthetic_dataset

    card = make_synthetic_dataset(tmp_path / "data", num_train=4, num_val=2, size=(64, 48))
    return ["bench", str(CONFIGS / "bench_synthetic.yaml"), f"data.train.source={card}",
            f"data.val.source={card}", "model.options={min_size: 64, max_size: 64}",
            "--out", str(tmp_path / "bench"), "--test", str(card), "--test-split", "val"]


@pytest.mark.slow
def test_bench_end_to_end_then_reused(tmp_path, capsys, monkeypatch):
    from detector.train import engine

    arguments = synthetic_bench_arguments(tmp_path)
    out = tmp_path / "bench"
    assert main(arguments) == 0
    printed = capsys.readouterr().out

    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == ["all", "top"]
    assert [row["strategy"] for row in rows] == ["finetune_all", "finetune_top"]
    test = read_dataset(tmp_path / "data" / "synthetic.yaml", split="val")
    classes = list(test.class_names)
    present = {classes[int(label)] for image in test.images for label in image.labels}
    assert classes == ["circle", "square", "triangle"] and present
    for row in rows:
        saved = json.loads((out / row["run"] / "results.json").read_text())
        for key in ("AP", "AP50", "train_s", "train_images_per_s", "eval_images_per_s"):
            value = float(row[key])
            assert math.isfinite(value) and value == pytest.approx(saved[key], rel=1e-5)
        assert 0 <= float(row["AP"]) <= float(row["AP50"]) <= 1
        assert float(row["train_s"]) > 0 and float(row["eval_images_per_s"]) > 0
        assert int(row["params"]) == saved["params"] > 1_000_000
        assert int(row["epochs"]) == 1 and row["init"] == "scratch"
        for name in classes:  # per-class AP: a number for every class with a box to find
            if name in present:
                assert 0 <= float(row[f"AP/{name}"]) <= float(row[f"AP50/{name}"]) <= 1
            else:
                assert row[f"AP/{name}"] == "" and saved["per_class"][name]["AP"] is None
        # The run folder is a normal training run, and the test predictions are kept.
        assert {"config.yaml", "last.pt", "metrics.csv", "test_predictions.json", "test"} <= {
            p.name for p in (out / row["run"]).iterdir()}
        assert (out / row["run"] / "test" / "pr_curves.png").is_file()
    # The table printed and the Markdown file hold the same runs and numbers.
    markdown = (out / "results.md").read_text()
    for row in rows:
        shown = f"{float(row['AP']):.3f}"
        assert f"| {row['run']} | fasterrcnn_mobilenet_v3_large_320_fpn | scratch |" in markdown
        assert row["run"] in printed and shown in printed and shown in markdown
    assert "mAP50-95" in printed and "| circle |" in markdown
    # Validation mAP50 after each epoch, as metrics.csv of each run holds it.
    from detector.evaluation.report import read_metrics_csv

    assert "## Validation mAP50 after each epoch" in markdown
    for row in rows:
        history = read_metrics_csv(out / row["run"] / "metrics.csv")
        assert f"| {row['run']} | {history[-1]['AP50']:.3f} |" in markdown
    for plot in ("ap_vs_epoch.png", "per_class_ap.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000

    # A second invocation trains nothing and rewrites no run's results.
    stamps = {row["run"]: (out / row["run"] / "results.json").stat().st_mtime_ns for row in rows}
    real_fit = engine.fit
    calls = []

    def counting_fit(*args, **kwargs):
        calls.append(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(engine, "fit", counting_fit)
    assert main(arguments) == 0
    printed_again = capsys.readouterr().out
    assert calls == []
    assert {run: (out / run / "results.json").stat().st_mtime_ns for run in stamps} == stamps
    with (out / "results.csv").open(newline="") as f:
        assert list(csv.DictReader(f)) == rows
    assert printed_again.count("finished before, reused") == 2

    # Results of another config are not reused: the run resumes from its own checkpoint (which
    # has all its epochs) and is only scored again; the other run stays as it was.
    results_file = out / "top" / "results.json"
    stale = json.loads(results_file.read_text())
    results_file.write_text(json.dumps({**stale, "results_hash": "0" * 16}))
    assert main(arguments) == 0
    assert len(calls) == 1 and calls[0]["resume"] is True
    assert json.loads(results_file.read_text())["results_hash"] == stale["results_hash"]
    assert (out / "all" / "results.json").stat().st_mtime_ns == stamps["all"]
