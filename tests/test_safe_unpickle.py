"""The restricted unpickler: foreign classes become inert Records; every other global is refused."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from detector.errors import CheckpointError
from detector.models.safe_unpickle import Record, load_pickled


class _OpensFile:
    """Unpickling this calls builtins.open(target, 'w'): it would create the file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class _RunsShell:
    def __reduce__(self):
        import os

        return (os.system, ("echo hacked",))


def _foreign_module_class():
    """A Conv+BN module whose class claims to live in `fakeyolo.models` (like YOLOv5's classes)."""
    package = types.ModuleType("fakeyolo")
    module = types.ModuleType("fakeyolo.models")
    package.models = module

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.register_buffer("scratch", torch.zeros(2), persistent=False)
            self.label = "block"

    Block.__module__ = "fakeyolo.models"
    Block.__qualname__ = "Block"
    module.Block = Block
    return {"fakeyolo": package, "fakeyolo.models": module}, Block


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "hostile.pt"
    torch.save({"model": _OpensFile(target)}, path)
    with pytest.raises(CheckpointError) as info:
        load_pickled(path, ("models.", "utils."))
    message = str(info.value)
    assert str(path) in message and "open" in message
    assert not target.exists()


def test_shell_global_is_refused(tmp_path):
    path = tmp_path / "shell.pt"
    torch.save([_RunsShell()], path)
    with pytest.raises(CheckpointError, match="system"):
        load_pickled(path, ("models.",))


def test_prefix_outside_allow_list_is_refused(tmp_path):
    module, block_class = _foreign_module_class()
    sys.modules.update(module)
    try:
        path = tmp_path / "block.pt"
        torch.save({"model": block_class()}, path)
    finally:
        for name in module:
            del sys.modules[name]
    with pytest.raises(CheckpointError, match="fakeyolo.models.Block"):
        load_pickled(path, ("ultralytics.",))


def test_truncated_and_garbage_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(1000)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_pickled(truncated, ("models.",))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_pickled(garbage, ("models.",))
    with pytest.raises(CheckpointError, match="no such"):
        load_pickled(tmp_path / "missing.pt", ("models.",))


def test_foreign_module_becomes_record_with_its_weights(tmp_path):
    module, block_class = _foreign_module_class()
    block = block_class()
    with torch.no_grad():
        block.bn.running_mean.uniform_()
    sys.modules.update(module)
    try:
        path = tmp_path / "block.pt"
        torch.save({"model": block, "epoch": 3}, path)
    finally:
        for name in module:
            del sys.modules[name]
    loaded = load_pickled(path, ("fakeyolo.",))
    assert loaded["epoch"] == 3
    record = loaded["model"]
    assert isinstance(record, Record) and not isinstance(record, nn.Module)
    assert (record.module, record.name) == ("fakeyolo.models", "Block")
    assert record["label"] == "block"
    assert record.children()["conv"].qualname == "torch.nn.modules.conv.Conv2d"
    expected = block.state_dict()
    got = record.state_dict()
    assert list(got) == list(expected)  # same names, same order; the non-persistent buffer left out
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


@pytest.mark.shared_data
def test_reads_official_yolov5n(shared_weights):
    checkpoint = load_pickled(shared_weights / "yolov5n.pt", ("models.", "utils."))
    model = checkpoint["model"]
    assert model.qualname == "models.yolo.Model"
    assert model["yaml"]["width_multiple"] == 0.25
    weights = model.state_dict()
    assert weights["model.0.conv.weight"].shape == (16, 3, 6, 6)
    assert weights["model.24.m.0.weight"].shape == (255, 64, 1, 1)
