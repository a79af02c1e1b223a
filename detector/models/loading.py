"""`load_model(spec)`: one entry point from "what the user typed" to a Detector.

`spec` may be
- a run checkpoint written by the engine (last.pt / best.pt, or a `detector convert` output):
  rebuilt with `build_detector(arch, class_names, in_channels=..., weights=None, **build_args)`
  and its weights loaded (the EMA weights when the run kept an EMA);
- a registered arch name: built with its default pretrained weights;
- another checkpoint file (a classic YOLOv5 .pt, an ultralytics .pt): handed to the family
  importers in FOREIGN_IMPORTERS, each of which returns a Detector or None ("not mine");
- a name in the weights registry: resolved to a file, then as above.

With `class_names`, the head is remapped to those classes (`class_map`: 'auto' or {new: old}).
Nothing in any file is executed: run checkpoints are read with weights_only=True, foreign ones
by the importers' restricted unpicklers.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch

from detector.checkpoint import NotARunCheckpoint, load_checkpoint
from detector.errors import CheckpointError, ConfigError, WeightsError
from detector.models.detector import Detector
from detector.models.registry import build_detector, list_models


def _lazy_importer(module_name: str) -> Callable[[Path], Detector | None]:
    """`module_name.import_checkpoint(path)`, imported on first use (ultralytics is slow to load)."""

    def import_checkpoint(path: Path) -> Detector | None:
        return importlib.import_module(module_name).import_checkpoint(path)

    import_checkpoint.module_name = module_name
    return import_checkpoint


# family -> callable(path) -> Detector, or None when the file is not that family's.
FOREIGN_IMPORTERS: dict[str, Callable[[Path], Detector | None]] = {
    "yolov5": _lazy_importer("detector.models.yolov5"),
    "ultralytics": _lazy_importer("detector.models.ultralytics"),
}


def detector_from_checkpoint(state: dict, prefer_ema: bool = True,
                             source: str | Path = "checkpoint") -> Detector:
    """Rebuild the network a run checkpoint describes and load its weights (EMA when present).

    Raises CheckpointError naming `source` (the file) when the arch is unknown, the build options
    do not fit it, or the tensors do not fit the network it describes."""
    try:
        detector = build_detector(state["arch"], state["class_names"], weights=None,
                                  in_channels=state["in_channels"],
                                  **(state.get("build_args") or {}))
    except ConfigError as e:
        raise CheckpointError(f"{source}: cannot rebuild its network: {e}") from e
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise CheckpointError(f"{source}: cannot rebuild arch {state['arch']!r} from its entries "
                              f"(build_args {state.get('build_args')}): {_first_line(e)}") from e
    weights = state["model"]
    if prefer_ema and state.get("ema"):
        weights = state["ema"].get("model") if isinstance(state["ema"], dict) else None
        if not isinstance(weights, dict):
            raise CheckpointError(f"{source}: checkpoint entry 'ema' holds no 'model' state_dict")
    try:
        detector.load_state_dict(weights)
    except (RuntimeError, TypeError, KeyError) as e:
        # load_state_dict lists every missing, unexpected and mis-shaped tensor; the first says
        # enough for a line, --debug shows them all
        raise CheckpointError(
            f"{source}: its tensors do not fit {state['arch']} with {len(state['class_names'])} "
            f"classes and {state['in_channels']} input channels ({_first_line(e)})") from e
    if state.get("modalities"):
        detector.modalities = list(state["modalities"])
    return detector


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if "size mismatch" in line or "Missing" in line
                   or "Unexpected" in line), lines[0] if lines else type(error).__name__)
    return detail[:300]


def _import_foreign(path: Path, tried: list[str]) -> Detector | None:
    for family, importer in FOREIGN_IMPORTERS.items():
        try:
            detector = importer(path)
        except ModuleNotFoundError as e:
            if e.name != getattr(importer, "module_name", None):
                raise
            tried.append(f"{family} (importer not installed)")
            continue
        except CheckpointError as e:
            tried.append(f"{family} ({e})")
            continue
        if detector is not None:
            return detector
        tried.append(f"{family} (not a {family} checkpoint)")
    return None


def _load_file(path: Path) -> Detector:
    tried = []
    try:
        state = load_checkpoint(path)
    except NotARunCheckpoint as e:
        tried.append(f"run checkpoint ({str(e).removeprefix(f'{path}: ')})")
    else:  # a run checkpoint: no other family's importer should have a go at it
        return detector_from_checkpoint(state, source=path)
    detector = _import_foreign(path, tried)
    if detector is None:
        raise CheckpointError(f"{path}: not a checkpoint detector can load; tried: {'; '.join(tried)}")
    return detector


def _default_weights(arch: str) -> str | None:
    """The registry's default pretrained weights for `arch` (None: the arch has none)."""
    from detector.weights import default_weights

    return default_weights(arch)


def _remap(detector: Detector, class_names: list[str], class_map) -> Detector:
    from detector.models.surgery import remap_classes

    remap_classes(detector, list(class_names), class_map)
    return detector


def load_model(spec: str | Path, class_names: list[str] | None = None, class_map=None,
               device: str | torch.device | None = None) -> Detector:
    """A Detector in eval mode on `device` (default CPU) from a checkpoint, arch or weights name.

    Raises CheckpointError / ConfigError naming `spec` and listing what was tried.
    """
    path = Path(spec)
    if path.is_file():
        detector = _load_file(path)
    elif str(spec) in list_models():
        arch = str(spec)
        weights = _default_weights(arch)
        names = class_names
        if names is None:
            from detector.weights import weights_class_names

            names = weights_class_names(weights) if weights else None
            if names is None:
                raise ConfigError(f"{arch}: has no pretrained weights; give class_names to build it")
        detector = build_detector(arch, list(names), weights=weights, class_map=class_map)
        class_names = None  # the builder did the head surgery
    else:
        try:
            from detector.weights import resolve

            detector = _load_file(Path(resolve(str(spec))))
        except ModuleNotFoundError as e:
            if e.name != "detector.weights":
                raise
            raise CheckpointError(
                f"{spec}: no such file, and not a registered arch ({', '.join(list_models())})"
            ) from e
        except WeightsError as e:
            raise CheckpointError(
                f"{spec}: no such file, not a registered arch ({', '.join(list_models())}), "
                f"and not in the weights registry ({e})"
            ) from e
    if class_names is not None and list(class_names) != list(detector.class_names):
        detector = _remap(detector, class_names, class_map)
    return detector.to(device or "cpu").eval()


__all__ = ["FOREIGN_IMPORTERS", "detector_from_checkpoint", "load_model"]
