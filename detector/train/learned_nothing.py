"""The check that keeps a run that learned nothing from looking like a success.

After each evaluation during `fit`: no detection at all on the validation set, or AP exactly 0
once the warmup is over, is not a result but a symptom. The usual causes are named so the user
knows where to look: every score below the confidence threshold, class rows that start silent
and never moved (a class with no pretrained row and its loss switched off), a learning rate that
is too low to move the head or so high that it diverged.
"""

from __future__ import annotations

import math

CAUSES = ("likely causes: every score under the confidence threshold, class rows that never "
          "learned (new classes without a pretrained row), or train.lr too low or too high")


def learned_nothing(metrics, epoch: int, warmup_epochs: float, split: str = "validation",
                    where: str | None = None) -> str | None:
    """A one-line warning when the evaluation after `epoch` (1-based) shows nothing learned,
    else None. `metrics` has `.stats["AP"]` and, where known, `.num_predictions` and
    `.num_images`. AP 0 during warmup is expected and passes; no detection at all never does.
    `split` names the data in the message, `where` its start (default "epoch N")."""
    where = where or f"epoch {epoch}"
    predictions = getattr(metrics, "num_predictions", None)
    ap = float(metrics.stats["AP"])
    if predictions == 0:
        images = getattr(metrics, "num_images", 0)
        return f"{where}: the model made no detection on the {images} {split} images; {CAUSES}"
    if epoch > math.ceil(warmup_epochs) and ap == 0:
        return f"{where}: {split} AP is 0 after the warmup; {CAUSES}"
    return None
