"""Run checkpoints: a plain dict, written atomically, read without executing anything.

A checkpoint is
    {format_version, arch, class_names, in_channels, modalities, build_args,
     model (state_dict), ema (state_dict or None), optimizer, scheduler, scaler, epoch, config}
plus optional entries the engine adds (rng, best_metric, stage). Only tensors and plain Python
data go in, so `torch.load(weights_only=True)` reads it back and nothing in a file ever runs.

Writing goes to a temporary file in the same folder, is fsynced, then renamed over the target:
a crash at any moment leaves either the old file or the new one at `path`, never half of one.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from detector.errors import CheckpointError
from detector.outputs import write_atomically

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "class_names", "in_channels", "model", "epoch")
KEYS = REQUIRED_KEYS + (
    "modalities", "build_args", "ema", "optimizer", "scheduler", "scaler", "config",
)


class NotARunCheckpoint(CheckpointError):
    """The file is not (readable as) a run checkpoint; another family's importer may read it.
    A run checkpoint with broken entries raises a plain CheckpointError instead."""


def describe_detector(detector) -> dict:
    """The entries that say how to rebuild `detector` (a Detector): format_version, arch,
    class_names, in_channels, modalities, build_args. Add model (its state_dict), epoch and
    the rest to make a checkpoint, e.g. for `detector convert`:

        save_checkpoint(path, {**describe_detector(d), "model": d.state_dict(), "epoch": 0})
    """
    return {"format_version": FORMAT_VERSION, "arch": detector.arch,
            "class_names": list(detector.class_names), "in_channels": detector.in_channels,
            "modalities": list(detector.modalities),
            "build_args": detector.build_args()}


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path` atomically (temp file in the same folder, fsync, rename)."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")  # a caller's bug
    state = {**state, "format_version": state.get("format_version", FORMAT_VERSION)}
    # torch.serialization.save, not torch.save: importing ultralytics rebinds torch.save to a
    # wrapper that retries on RuntimeError, which is what a Ctrl-C inside the zip writer
    # becomes: the interrupt was swallowed and the retry appended a second copy to `f`
    write_atomically(path, lambda f: torch.serialization.save(state, f))


def read_weights_only(path: str | Path) -> object:
    """torch.load(weights_only=True) on CPU; any unreadable or unsafe file -> CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise NotARunCheckpoint(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            # torch warns on stderr about a pickle protocol it may not support, before it
            # refuses the file; the refusal below is the one line the user needs
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses every global outside tensors and plain data: foreign classes,
        # or a hostile __reduce__. Nothing was executed.
        raise NotARunCheckpoint(
            f"{path}: refused to load: it holds Python objects other than tensors and plain "
            f"data ({_torch_reason(e)})"
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise NotARunCheckpoint(
            f"{path}: not a readable torch checkpoint (truncated or corrupt? {_torch_reason(e)})"
        ) from e


def _torch_reason(error: Exception) -> str:
    """The part of torch.load's message that names the cause (the global it refused, the zip
    error), without its advice: for a refused file that advice is to load it unsafely."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = [line for line in lines if not line.startswith(_TORCH_ADVICE)]
    return (cause or lines or [type(error).__name__])[0].split(". ")[0].rstrip(".")


# the lines of torch.load's weights_only message around the cause
_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def load_checkpoint(path: str | Path) -> dict:
    """Read a run checkpoint written by `save_checkpoint`, on CPU.

    Raises CheckpointError naming the file when it is missing, truncated, not a torch file,
    holds anything but tensors and plain data, or is not a run checkpoint of a known version.
    """
    path = Path(path)
    state = read_weights_only(path)
    if not isinstance(state, dict) or "format_version" not in state:
        raise NotARunCheckpoint(
            f"{path}: not a detector run checkpoint (expected a dict with format_version, "
            f"arch, class_names, model...)"
        )
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {state['format_version']!r}; this version of "
            f"detector reads format_version {FORMAT_VERSION}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"{path}: 'model' should be a state_dict, got {type(state['model']).__name__}")
    _check_description(path, state)
    return state


def _check_description(path: Path, state: dict) -> None:
    """The entries that rebuild the network must have the types `describe_detector` writes: a
    file edited by hand (class_names as one string, in_channels 2 beside RGB weights) is refused
    here, naming the entry, rather than deep inside a builder."""
    def refuse(key: str, expected: str) -> None:
        raise CheckpointError(f"{path}: checkpoint entry {key!r} should be {expected}, got "
                              f"{state.get(key)!r:.80}")

    if not isinstance(state["arch"], str) or not state["arch"]:
        refuse("arch", "the name of a registered arch")
    names = state["class_names"]
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        refuse("class_names", "a non-empty list of class names")
    channels = state["in_channels"]
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        refuse("in_channels", "a positive number of input channels")
    modalities = state.get("modalities") or []
    if not isinstance(modalities, (list, tuple)) or not all(isinstance(m, str) for m in modalities):
        refuse("modalities", "a list of modality names (rgb, lwir)")
    if state.get("build_args") is not None and not isinstance(state["build_args"], dict):
        refuse("build_args", "a mapping of build options")
