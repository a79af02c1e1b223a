"""`ExportPlan`: a Detector split into what a graph can hold and what stays in Python.

An adapter's `export_plan(nms)` (detector/models/detector.py) returns one. Prediction with a plan
is always

    for indices, batch, context in plan.prepare(images):     # Python: letterbox, grouping
        outputs = network(batch)                              # the exported graph (or the module)
        detections = plan.finish(outputs, context)            # Python: NMS if not in the graph,
                                                              # boxes back to input pixels

so the exported file and the PyTorch module give the same detections as `detector(images)` when
the graph computes what `plan.network` computes. `run_plan` is that loop, written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn


@dataclass
class ExportPlan:
    """What to export and how to use it.

    - network: module taking one [B,C,H,W] float batch (already prepared) -> tuple of tensors
      named `output_names`
    - axes: for the input "images" and each output, {axis: name} of the axes whose length
      depends on the input (dynamic axes of the graph)
    - dynamic_batch: whether B may change (False: the graph takes exactly one image)
    - example: an input the network is traced with ([B,C,H,W], H and W multiples of the stride)
    - prepare(images: list of [C,H,W] 0..1) -> [(indices into images, batch, context)]
    - finish(outputs, context) -> one {"boxes" [N,4] xyxy input pixels, "scores" [N],
      "labels" [N] int64} per image of that batch, in the order of its indices
    - graph_nms: NMS is inside the graph (outputs are detections, not the head's predictions)
    """

    network: nn.Module
    output_names: tuple[str, ...]
    axes: dict[str, dict[int, str]]
    dynamic_batch: bool
    example: torch.Tensor
    prepare: Callable[[list[torch.Tensor]], list[tuple[Sequence[int], torch.Tensor, Any]]]
    finish: Callable[[Sequence[torch.Tensor], Any], list[dict[str, torch.Tensor]]]
    graph_nms: bool = False
    notes: list[str] = field(default_factory=list)  # what the graph leaves out, for the user


def run_plan(plan: ExportPlan, network: Callable[[torch.Tensor], Sequence[torch.Tensor]],
             images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Detections for `images` with `network` standing for `plan.network` (the module itself,
    or an onnxruntime session wrapped to take and return tensors)."""
    results: list[dict | None] = [None] * len(images)
    for indices, batch, context in plan.prepare(list(images)):
        for index, found in zip(indices, plan.finish(network(batch), context)):
            results[index] = found
    return results
