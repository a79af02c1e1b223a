"""Every recipe in configs/ is valid: train configs load, bench files plan their runs (so a key
renamed in the code cannot silently break a shipped recipe)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.bench.plan import is_bench_file, plan_bench
from detector.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    import yaml

    data = yaml.safe_load(path.read_text())
    if is_bench_file(data):
        plan = plan_bench([path])
        assert plan.runs and len({run.name for run in plan.runs}) == len(plan.runs)
    else:
        config = load_config(path)
        assert config.train.epochs or config.train.stages
