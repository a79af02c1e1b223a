"""A run's state between epochs: the checkpoint dict written after each epoch, and the restore of
that state when a run resumes (model, EMA, AMP scaler, schedule, adaptation, RNG, history).

The dict is the Checkpoint contract of DESIGN.md plus the loop's own keys (`stage`, `rng`,
`history`, `best_metric`, `best_epoch`, `adapt`); `load_model` reads the contract part alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detector.checkpoint import describe_detector, load_checkpoint
from detector.train.seeding import rng_state, seed_everything, set_rng_state


@dataclass
class Progress:
    """Where a run stands: the next epoch to train, the rows so far and the best evaluation.
    `saved` is the resumed checkpoint (None for a fresh run); its optimizer state is loaded
    when training re-enters the stage it was saved in."""

    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    saved: dict | None = None

    def record(self, row: dict) -> bool:
        """Append an epoch's row; True when its AP is the best so far (the run saves best.pt)."""
        self.history.append(row)
        if row.get("AP") is None or (self.best_metric is not None and row["AP"] <= self.best_metric):
            return False
        self.best_metric, self.best_epoch = row["AP"], row["epoch"]
        return True

    def saved_optimizer(self, stage_index: int) -> dict | None:
        """The resumed optimizer state when training resumes inside the stage it was saved in."""
        if self.saved is not None and self.saved.get("stage") == stage_index:
            return self.saved.get("optimizer")
        return None


def checkpoint_state(base, progress: Progress, *, epoch: int, stage_index: int, averaged, optimizer,
                     schedule, scaler, adaptation, config: dict | None) -> dict:
    """Everything needed to resume after `epoch` (1-based, just finished) or to load the model."""
    return {
        **describe_detector(base), "model": base.state_dict(),
        "ema": averaged.state_dict() if averaged is not None else None,
        "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
        "scaler": scaler.state_dict(), "epoch": epoch, "stage": stage_index,
        "config": config, "rng": rng_state(), "history": progress.history,
        "best_metric": progress.best_metric, "best_epoch": progress.best_epoch,
        "adapt": adaptation.state_dict() if adaptation is not None else None,
    }


def restore_run(out_dir: Path, base, *, averaged, scaler, schedule, adaptation, context,
                seed: int) -> Progress:
    """Load `out_dir/last.pt` into the loop's objects and return where the run stands.

    Temp files left by a process killed while saving are removed first. Only rank 0's RNG state
    is saved; the other ranks get a fresh stream distinct per rank and epoch."""
    for stale in out_dir.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    saved = load_checkpoint(out_dir / "last.pt")
    base.load_state_dict(saved["model"])
    if averaged is not None and saved.get("ema"):
        averaged.load_state_dict(saved["ema"])
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    if adaptation is not None and saved.get("adapt"):
        adaptation.load_state_dict(saved["adapt"])
    schedule.load_state_dict(saved["scheduler"])
    progress = Progress(saved["epoch"], list(saved.get("history", [])), saved.get("best_metric"),
                        saved.get("best_epoch"), saved)
    if context.is_main:
        set_rng_state(saved["rng"])
    else:
        seed_everything(seed + context.rank + 1000 * progress.start_epoch)
    return progress
