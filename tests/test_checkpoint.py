"""Run checkpoints: atomic save, weights_only load, clear errors for bad files."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from detector import outputs
from detector.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from detector.errors import CheckpointError


def make_state(epoch=1, value=1.0):
    return {"format_version": FORMAT_VERSION, "arch": "toy", "class_names": ["a", "b"],
            "in_channels": 3, "modalities": ["rgb"], "build_args": {"width": 8},
            "model": {"weight": torch.full((3, 3), value)}, "ema": None, "optimizer": None,
            "scheduler": {"step_count": 4}, "scaler": {}, "epoch": epoch,
            "config": {"train": {"lr": 0.01}}, "rng": {"python": (3, tuple(range(5)), None)}}


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("simulated crash in the middle of writing")


class Hostile:
    """Unpickling this would create `target` (a stand-in for any code execution)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_round_trip(tmp_path):
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, make_state(epoch=3))
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and state["class_names"] == ["a", "b"]
    assert torch.equal(state["model"]["weight"], torch.ones(3, 3))
    assert state["rng"]["python"] == (3, tuple(range(5)), None)


def test_crash_while_writing_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_state(epoch=1, value=1.0))
    before = path.read_bytes()
    broken = make_state(epoch=2, value=2.0)
    broken["config"] = {"bad": Unpicklable()}  # torch.save fails part-way through the file
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(path, broken)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_interrupt_before_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_state(epoch=1))
    seen = []

    def interrupted_fsync(fd):
        seen.append(os.fstat(fd).st_size)  # the new data is fully written by now
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_state(epoch=2, value=5.0))
    monkeypatch.undo()
    assert seen and seen[0] > 0
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "created_by_pickle"
    zipped = tmp_path / "hostile.pt"
    torch.save({"format_version": FORMAT_VERSION, "model": Hostile(target)}, zipped)
    legacy = tmp_path / "hostile_legacy.pt"
    with open(legacy, "wb") as f:
        pickle.dump(Hostile(target), f, protocol=2)
    for path in (zipped, legacy):
        with pytest.raises(CheckpointError, match="refused to load") as error:
            load_checkpoint(path)
        assert str(path) in str(error.value)
    assert not target.exists()


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_foreign_and_wrong_version_and_missing(tmp_path):
    plain = tmp_path / "state_dict.pth"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not a detector run checkpoint"):
        load_checkpoint(plain)
    future = tmp_path / "future.pt"
    save_checkpoint(future, {**make_state(), "format_version": 99})
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(future)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({k: v for k, v in make_state().items() if k != "class_names"}, incomplete)
    with pytest.raises(CheckpointError, match="lacks class_names"):
        load_checkpoint(incomplete)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_ctrl_c_in_the_middle_of_a_write_comes_after_the_whole_file(tmp_path):
    """A SIGINT halfway through the bytes is held until the file is renamed into place: the new
    file is whole, then KeyboardInterrupt (a Ctrl-C inside torch's zip writer otherwise becomes a
    RuntimeError, which ultralytics' torch.save wrapper even retries)."""
    import signal

    path = tmp_path / "metrics.csv"

    def content(f):
        f.write(b"first half,")
        os.kill(os.getpid(), signal.SIGINT)
        f.write(b"second half\n")

    with pytest.raises(KeyboardInterrupt):
        outputs.write_atomically(path, content)
    assert path.read_bytes() == b"first half,second half\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_checkpoints_are_written_by_torch_itself_not_a_retrying_wrapper(tmp_path, monkeypatch):
    import torch.serialization

    calls = []
    monkeypatch.setattr(torch, "save", lambda *a, **k: calls.append(a))  # as ultralytics does
    save_checkpoint(tmp_path / "last.pt", make_state(epoch=4))
    assert calls == [] and load_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    assert torch.serialization.save is not torch.save


def test_ctrl_c_during_a_write_that_then_fails_is_still_an_interrupt(tmp_path):
    import signal

    def content(f):
        os.kill(os.getpid(), signal.SIGINT)
        raise OSError("disk full")

    with pytest.raises(KeyboardInterrupt) as caught:
        outputs.write_atomically(tmp_path / "x.csv", content)
    assert isinstance(caught.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []
