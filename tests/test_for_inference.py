"""`Detector.for_inference()`: BatchNorm folded into the convolutions, same predictions, the
original left as it was."""

from __future__ import annotations

import pytest
import torch

from detector.models.registry import build_detector


def _raw(detector, batch: torch.Tensor) -> list[torch.Tensor]:
    """Every tensor the network returns for `batch`, before any post-processing."""
    out = detector.raw_outputs(batch) if hasattr(detector, "raw_outputs") else detector.model(batch)
    tensors = []
    stack = [out]
    while stack:
        item = stack.pop(0)
        if torch.is_tensor(item):
            tensors.append(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return tensors


@pytest.mark.parametrize("arch", ["yolov8n", "yolov5n"])
def test_fused_copy_predicts_the_same_and_leaves_the_original(arch):
    torch.manual_seed(0)
    detector = build_detector(arch, ["a", "b"], image_size=128).eval()
    # non-trivial BatchNorm statistics, so that folding them is tested
    for module in detector.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    fused = detector.for_inference()
    assert fused is not detector
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in detector.modules())
    batch = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        expected, got = _raw(detector, batch), _raw(fused, batch)
    assert len(expected) == len(got) > 0
    for a, b in zip(expected, got):  # the network's outputs before NMS
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)
    with torch.no_grad():  # and it runs the contract's eval path
        assert len(fused([torch.rand(3, 96, 128)])[0]["boxes"]) > 0
    assert all(torch.equal(before[k], v) for k, v in detector.state_dict().items())
