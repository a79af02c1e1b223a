"""The Detector contract every adapter keeps.

- Train mode: ``forward(images, targets) -> dict[str, Tensor]`` of named scalar losses
  (the engine sums them).
- Eval mode: ``forward(images) -> list[{"boxes": [N,4] xyxy pixels of the input image,
  "scores": [N], "labels": [N] int64}]``.

``images`` is a list of [C,H,W] float tensors in 0..1, channels in the order of ``modalities``
(RGB order for an ``rgb`` modality, then one channel per thermal modality); ``targets`` is a list
of ``{"boxes": [M,4] float32 xyxy pixels, "labels": [M] int64}`` with 0-based labels. Adapters
resize/letterbox internally and map boxes back, so callers never do.

Each adapter names its parts (``stem``, ``backbone.<i>``, ``neck``, ``head``) through
``parts()``, so freezing and per-group learning rates are written once (train/freezing.py), and
says how to rebuild itself from a checkpoint through ``build_args()``.
"""

from __future__ import annotations

from torch import nn


# What a network of N input channels most likely reads, until the data says (training and
# `detector convert` set the data's own modalities).
DEFAULT_MODALITIES = {1: ("lwir",), 3: ("rgb",), 4: ("rgb", "lwir")}


def default_modalities(in_channels: int) -> list[str]:
    """['rgb'] for 3 channels, ['lwir'] for 1, ['rgb', 'lwir'] for 4, else [] (unknown)."""
    return list(DEFAULT_MODALITIES.get(in_channels, ()))


class Detector(nn.Module):
    """Base class of every adapter. Subclasses set the attributes and implement the methods."""

    arch: str
    class_names: list[str]
    in_channels: int = 3
    modalities: list[str] = []  # instances assign their own list; [] = not known

    def parts(self) -> dict[str, nn.Module]:
        """Named parts in input-to-output order: 'stem', 'backbone.0', ..., 'neck', 'head'.

        Every trainable parameter belongs to exactly one part.
        """
        raise NotImplementedError

    # --- surgery hooks (used by detector/models/surgery.py; written once per adapter) ---

    def stem_conv(self) -> nn.Conv2d:
        """The first convolution, the one that sees the input channels."""
        raise NotImplementedError

    def set_stem_conv(self, conv: nn.Conv2d) -> None:
        """Put `conv` in place of the first convolution."""
        raise NotImplementedError

    def input_stats(self) -> tuple[list[float], list[float]] | None:
        """Per-channel (mean, std) the adapter normalises inputs with, or None if it feeds 0..1."""
        return None

    def set_input_stats(self, mean: list[float], std: list[float]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not normalise its input")

    def remap_head(self, class_names: list[str], mapping: dict[int, int]) -> None:
        """Rebuild the classification head for `class_names`; for each new label `i` in
        `mapping`, copy the pretrained rows of old label `mapping[i]` (classifier and, where the
        family has per-class box rows, box regressor). Unmapped rows are freshly initialised."""
        raise NotImplementedError

    def features(self, images: list) -> list:
        """The neck's output levels for `images` (a list of [C,H,W] floats in 0..1, batched as
        the train-mode forward batches them): a list of [B,C_l,H_l,W_l] tensors, finest level
        first, with gradients. Domain adaptation (detector/adapt/) aligns these; they depend on
        every part but the head."""
        raise NotImplementedError

    def build_args(self) -> dict:
        """Extra keyword arguments `build_detector` needs to rebuild this network from scratch
        (plain data only: str, int, float, list, dict), stored in checkpoints."""
        return {}

    def for_inference(self) -> "Detector":
        """A detector giving the same predictions faster (BatchNorm folded into the convolution
        before it, where the family can), for evaluation and prediction. `self` is never
        changed; families without such a rewrite return `self`."""
        return self

    def eval_long_side(self) -> int | None:
        """The longest side the detector resizes each evaluation image to, when it does that
        first thing and nothing else (aspect kept): the data loader can then resize the stored
        8-bit image with OpenCV instead (faster). None: the loader keeps the original size."""
        return None

    def export_plan(self, nms: bool = False):
        """An `ExportPlan` (detector/export/plan.py): the module an exporter traces, on a
        prepared [B,C,H,W] batch, and the Python steps around it that give the same detections
        as eval mode. `nms`: NMS inside the graph where the family's graph does not hold it."""
        raise NotImplementedError(f"{type(self).__name__} has no export plan")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
