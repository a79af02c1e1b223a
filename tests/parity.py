"""Detection-set comparison for the export tests: every detection of one side has a partner
on the other with the same label, the box within `box_tol` px and the score within
`score_tol` (order-free: equal scores may come out in either order)."""

from __future__ import annotations

import torch


def unmatched(reference: dict, other: dict, box_tol: float, score_tol: float):
    """(detections of `reference` without a partner in `other`, worst box error, worst score
    error over the matched ones); partners are used once."""
    used = torch.zeros(len(other["boxes"]), dtype=torch.bool)
    missing, worst_box, worst_score = 0, 0.0, 0.0
    for box, score, label in zip(reference["boxes"], reference["scores"], reference["labels"]):
        box_error = (other["boxes"] - box).abs().amax(1) if len(other["boxes"]) else torch.zeros(0)
        score_error = (other["scores"] - score).abs()
        fits = ~used & (other["labels"] == label) & (box_error <= box_tol) & (score_error <= score_tol)
        if not fits.any():
            missing += 1
            continue
        index = int(torch.nonzero(fits)[0])
        used[index] = True
        worst_box = max(worst_box, float(box_error[index]))
        worst_score = max(worst_score, float(score_error[index]))
    return missing, worst_box, worst_score


def assert_same_detections(reference: list[dict], other: list[dict], box_tol: float = 1e-3,
                           score_tol: float = 1e-4) -> None:
    assert len(reference) == len(other)
    for index, (ours, theirs) in enumerate(zip(reference, other)):
        assert len(ours["boxes"]) == len(theirs["boxes"]), f"image {index}"
        missing, worst_box, worst_score = unmatched(ours, theirs, box_tol, score_tol)
        assert missing == 0, (f"image {index}: {missing} of {len(ours['boxes'])} detections differ "
                              f"(matched ones within {worst_box:.2g} px, {worst_score:.2g})")
