"""`ExportedDetector`: an exported graph behind the Detector contract (eval mode only).

The file's metadata says which detector it was exported from (arch, classes, input channels,
build arguments, NMS in the graph or not). That detector is rebuilt without weights, only for
its export plan's Python steps (letterbox, NMS when the graph has none, boxes back to input
pixels); the graph stands for its network. So `ExportedDetector(images)` gives what
`detector(images)` gave before export, whatever the family, and nothing here asks which one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from detector.errors import CheckpointError, DetectorError
from detector.export.plan import ExportPlan, run_plan
from detector.models.detector import Detector

METADATA_KEY = "detector"  # the ONNX metadata_props entry holding describe_detector() + graph_nms
METADATA_VERSION = 1


def plan_from_metadata(meta: dict, path: Path) -> tuple[Detector, ExportPlan]:
    """(rebuilt detector without weights, its export plan) from an exported file's metadata."""
    from detector.models.registry import build_detector

    try:
        detector = build_detector(meta["arch"], list(meta["class_names"]), weights=None,
                                  in_channels=int(meta["in_channels"]),
                                  **dict(meta.get("build_args") or {}))
        plan = detector.eval().export_plan(nms=bool(meta.get("graph_nms")))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its detector metadata is not usable ({e})") from e
    except DetectorError as e:
        raise CheckpointError(f"{path}: cannot rebuild the detector it was exported from ({e})") from e
    detector.modalities = list(meta.get("modalities") or detector.modalities)
    return detector, plan


class ExportedDetector(Detector):
    """Eval-mode Detector over `network` (a callable [B,C,H,W] tensor -> tuple of tensors, e.g.
    an onnxruntime session) and the plan of the detector it was exported from."""

    def __init__(self, source: Detector, plan: ExportPlan,
                 network: Callable[[torch.Tensor], Sequence[torch.Tensor]], path: Path):
        super().__init__()
        self.arch = source.arch
        self.class_names = list(source.class_names)
        self.in_channels = source.in_channels
        self.modalities = list(source.modalities)
        self.plan, self.network, self.path = plan, network, path
        self.eval()

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError(f"{self.path}: an exported detector cannot train")
        return super().train(False)

    def forward(self, images: list[torch.Tensor], targets=None):
        """images: list of [C,H,W] float 0..1 -> list of {"boxes" [N,4] xyxy pixels of each
        image, "scores" [N], "labels" [N] int64}, as the original detector's eval mode."""
        for index, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise ValueError(f"{self.path}: image {index} has shape {list(image.shape)}; "
                                 f"expected [{self.in_channels},H,W] "
                                 f"({' + '.join(self.modalities) or 'its input channels'})")
        images = [image.detach().float().cpu() for image in images]
        with torch.inference_mode():
            return run_plan(self.plan, self.network, images)

    def build_args(self) -> dict:
        raise NotImplementedError(f"{self.path}: an exported detector is not rebuilt from build args")
