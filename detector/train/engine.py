"""The training engine: `fit` runs the stages, `train_one_epoch` is the loop.

    fit(detector, train_data, val_data, out_dir="runs/x", stages=[Stage(3, ("head",)), ...])

`train_data` / `val_data` are datasets of `(image [C,H,W] float 0..1, target)` with targets as in
detector/data/dataset.py (boxes [M,4] float32 xyxy pixels, labels [M] int64 0-based, image_id).
Any Detector trains the same way: it returns a dict of losses and the engine sums them.

The run directory gets config.yaml (when `config` is given), last.pt and best.pt (by validation
mAP50-95), and what the `loggers` write (train/loggers.py; csv by default: metrics.csv and
training_curves.png, rewritten each epoch, and pr_curves.png and class_ap.png of the best
evaluation; tensorboard: an events file). A run resumes
from last.pt at the next epoch with optimizer, schedule, AMP scaler, EMA and RNG state. Under
torchrun each process trains on its share of every batch (`batch_size` is the global batch) and
rank 0 evaluates, logs and saves.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from detector.checkpoint import save_checkpoint
from detector.errors import CheckpointError, ConfigError, TrainingError
from detector.outputs import write_atomically
from detector.train.dist import (
    all_true, barrier, init_distributed, make_sampler, reduce_mean, sync_batchnorm, unwrap_model,
    wrap_model,
)
from detector.train.ema import ModelEMA
from detector.train.freezing import Stage, apply_stage, param_groups, resolve_stages, stage_at
from detector.train.learned_nothing import learned_nothing
from detector.train.loggers import build_loggers
from detector.train.run_state import Progress, checkpoint_state, restore_run
from detector.train.schedule import WarmupCosine
from detector.train.seeding import seed_everything


def _to_device(target: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in target.items()}


def _check_finite(loss: torch.Tensor, losses: dict, epoch: int, batch_index: int, targets) -> None:
    finite = bool(torch.isfinite(loss).item())
    if all_true(finite, loss.device):
        return
    if finite:  # under DDP: another process saw it, and raises with the details
        raise TrainingError(f"epoch {epoch + 1}, batch {batch_index}: the loss is not finite "
                            "on another process")
    terms = ", ".join(f"{name}={value.item():.4g}" for name, value in losses.items())
    ids = [t.get("image_id", t.get("index")) for t in targets]
    raise TrainingError(
        f"epoch {epoch + 1}, batch {batch_index}: the loss is not finite ({terms}); images "
        f"{ids}. Check those images' boxes, lower train.lr or set train.clip_grad"
    )


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    schedule: WarmupCosine, scaler: torch.amp.GradScaler, *, epoch: int,
                    device: torch.device, base_lr: float, clip_grad: float | None = None,
                    ema: ModelEMA | None = None, show_progress: bool = True,
                    adaptation=None) -> dict:
    """One pass over `loader`; returns the mean of each loss term, 'loss' (their sum), 'lr' (at
    the end) and 'images_per_s'. Raises TrainingError on a non-finite loss. `adaptation` (a
    detector.adapt DomainAdaptation) adds its terms on target-domain images to each step."""
    model.train()
    sums: dict[str, float] = {}
    images_seen, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", disable=not show_progress,
               dynamic_ncols=True, leave=False)
    trained = [p for group in optimizer.param_groups for p in group["params"]]
    batch_index = -1
    for batch_index, (images, targets) in enumerate(bar):
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [_to_device(target, device) for target in targets]
        schedule.apply(optimizer, base_lr)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):  # AMP
            losses = model(images, targets)
            if adaptation is not None:  # domain adaptation: one batch of target images
                losses.update(adaptation.losses(images))
        loss = sum(value.float() for value in losses.values())
        _check_finite(loss, losses, epoch, batch_index, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # under DDP, gradients are averaged across ranks here
        if clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(trained, clip_grad)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        if ema is not None:
            ema.update(unwrap_model(model))  # EMA
        for name, value in [("loss", loss), *losses.items()]:
            sums[name] = sums.get(name, 0.0) + value.item()
        images_seen += len(images)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                        img_s=f"{images_seen / (time.perf_counter() - start):.1f}")
    batches = max(1, batch_index + 1)
    means = {name: reduce_mean(torch.tensor(total / batches, device=device)).item()
             for name, total in sums.items()}
    return {**means, "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": images_seen / max(time.perf_counter() - start, 1e-9)}


def build_optimizer(groups: list[dict], name: str, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, as torchvision's detection recipes) or AdamW (beta1 = momentum)."""
    if not groups:
        raise TrainingError("this stage trains no parameters (every part is frozen)")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    raise ConfigError(f"train.optimizer: expected 'sgd' or 'adamw', got {name!r}")


def _collate(batch):
    from detector.data.dataset import collate_detection

    return collate_detection(batch)


def _default_evaluate(detector, data, *, backend, batch_size, device):
    from detector.evaluation.coco import evaluate

    return evaluate(detector, data, backend=backend, batch_size=batch_size, device=device)


def _open_run(out_dir: Path, config: dict | None, loggers):
    """The run folder with its config.yaml (the resolved config, when given); returns the
    loggers (train/loggers.py) that write into it."""
    run_loggers = build_loggers(loggers, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        write_atomically(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    return run_loggers


def _make_loader(train_data, context, batch_size: int, workers: int, seed: int, collate_fn,
                 device: torch.device):
    """(loader, sampler) over this process's share of each global batch of `batch_size`."""
    sampler = make_sampler(train_data, context, shuffle=True, seed=seed)
    loader = DataLoader(train_data, batch_size=batch_size // context.world_size, sampler=sampler,
                        num_workers=workers, collate_fn=collate_fn,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    if len(loader) == 0:
        raise TrainingError("the training set is empty: nothing to train on")
    return loader, sampler


def _stage_optimizer(base, stage: Stage, adaptation, name: str, lr: float, momentum: float,
                     weight_decay: float, layer_decay: float | None, saved: dict | None,
                     saved_in: Path):
    """Freeze and unfreeze for `stage` and build its optimizer (with the adaptation's own
    parameters, which train with the detector); `saved` is a resumed optimizer state, read
    from the checkpoint `saved_in`."""
    apply_stage(base, stage)
    groups = param_groups(base, stage, lr, weight_decay, layer_decay)
    if adaptation is not None:
        groups += adaptation.param_groups(lr, weight_decay)
    optimizer = build_optimizer(groups, name, lr, momentum, weight_decay)
    if saved:
        try:
            optimizer.load_state_dict(saved)
        except ValueError as error:  # another group layout: e.g. last.pt from an older detector
            raise CheckpointError(
                f"{saved_in}: its optimizer state does not fit this run's parameter groups ({error}); "
                "train from it anew with model.weights=<run>/last.pt instead of --resume") from None
    return optimizer


def _make_adaptation(base, adapt, **kwargs):
    from detector.adapt.adaptation import DomainAdaptation

    return DomainAdaptation(base, adapt, **kwargs)


def _record_evaluation(row: dict, metrics, warmup_epochs: float) -> None:
    """Put an evaluation's AP and AP50 into the epoch's row, and a warning (printed, and in the
    row's `warning` column) when it shows that nothing was learned."""
    row["AP"], row["AP50"] = float(metrics.stats["AP"]), float(metrics.stats["AP50"])
    warning = learned_nothing(metrics, row["epoch"], warmup_epochs)
    if warning:
        row["warning"] = warning
        tqdm.write(f"warning: {warning}", file=sys.stderr)


def _save_epoch(out_dir: Path, state: dict, history: list[dict], best_metrics, loggers,
                progress_label: str | None) -> None:
    """last.pt, best.pt (when `best_metrics` is given: this epoch improved), the loggers' files
    (train/loggers.py), and the epoch's line when `progress_label` ("3/10") is given."""
    save_checkpoint(out_dir / "last.pt", state)
    if best_metrics is not None:
        save_checkpoint(out_dir / "best.pt", state)
    loggers.log_epoch(history)
    if best_metrics is not None:
        loggers.log_best(best_metrics, state["epoch"])
    if progress_label:
        row = history[-1]
        ap = "" if row["AP"] is None else f"  AP {row['AP']:.4f}  AP50 {row['AP50']:.4f}"
        tqdm.write(f"epoch {progress_label}  stage {row['stage']}  loss {row['loss']:.4f}  "
                   f"{row['images_per_s']:.1f} img/s{ap}")


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    from detector.runtime import resolve_device as resolve

    return resolve(device, "train.device", local_rank)


def fit(detector: nn.Module, train_data: Dataset, val_data: Dataset | None = None, *,
        out_dir: str | Path, epochs: int | None = None, stages: list[Stage] | list[dict] | None = None,
        preset: str | None = None, batch_size: int = 4, optimizer: str = "sgd", lr: float = 0.01,
        momentum: float = 0.9, weight_decay: float = 1e-4, warmup_epochs: float = 1.0,
        warmup_bias_lr: float = 0.0, cosine: bool = True, final_lr_ratio: float = 0.01, amp: bool = True,
        clip_grad: float | None = 10.0, ema: bool = False, ema_decay: float = 0.9998,
        eval_every: int = 1, eval_backend: str = "hotcoco", lr_mult: dict | None = None,
        layer_decay: float | None = None, workers: int = 2, seed: int = 0,
        device: str | None = None, resume: bool = False, config: dict | None = None,
        evaluate_fn=None, collate_fn=None, show_progress: bool = True, adapt=None,
        sync_bn: bool = False, loggers: tuple[str, ...] = ("csv",)) -> dict:
    """Train `detector` through its stages, writing the run directory `out_dir`.

    Stages come from `stages`, else `preset` over `epochs` (default finetune_all). `batch_size`
    is the global batch (split across torchrun processes). `evaluate_fn(detector, data,
    backend=, batch_size=, device=)` returns an object with `.stats["AP"]`, `.stats["AP50"]`
    (default: detector.evaluation.coco.evaluate); it runs every `eval_every` epochs and at the
    end. With `resume`, training continues from `out_dir/last.pt` at its next epoch. `adapt`
    (a detector.adapt AdaptSpec) adapts the detector to unlabelled target-domain images.
    `sync_bn`: SyncBatchNorm under torchrun on CUDA; `loggers`: names from train/loggers.py.

    Returns {"out_dir", "epochs", "best_metric", "best_epoch", "history", "warnings"}; an
    evaluation that shows nothing learned warns (train/learned_nothing.py; metrics.csv `warning`).
    """
    context = init_distributed(device)
    device = resolve_device(device, context.local_rank)
    detector = sync_batchnorm(detector, context, device, sync_bn)
    evaluate_fn = evaluate_fn or _default_evaluate
    out_dir = Path(out_dir)
    run_loggers = _open_run(out_dir, config, loggers) if context.is_main else None
    if batch_size % context.world_size:
        raise ConfigError(f"train.batch_size {batch_size} does not split over {context.world_size} processes")
    seed_everything(seed + context.rank)
    base = unwrap_model(detector)
    stages = resolve_stages(list(base.parts()), epochs=epochs, stages=stages, preset=preset, lr_mult=lr_mult)
    total_epochs = sum(stage.epochs for stage in stages)
    base.to(device)
    averaged = ModelEMA(base, decay=ema_decay) if ema else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    loader, sampler = _make_loader(train_data, context, batch_size, workers, seed,
                                   collate_fn or _collate, device)
    schedule = WarmupCosine(total_epochs * len(loader), round(warmup_epochs * len(loader)),
                            cosine=cosine, final_ratio=final_lr_ratio, warmup_bias_lr=warmup_bias_lr)
    adaptation = None if adapt is None else _make_adaptation(
        base, adapt, stages=stages, batch_size=batch_size, steps_per_epoch=len(loader),
        context=context, device=device, workers=workers, seed=seed, collate_fn=collate_fn or _collate)
    progress = Progress()
    if resume:
        progress = restore_run(out_dir, base, averaged=averaged, scaler=scaler, schedule=schedule,
                               adaptation=adaptation, context=context, seed=seed)
    if progress.start_epoch >= total_epochs and context.is_main:
        tqdm.write(f"{out_dir}: already trained {progress.start_epoch} of {total_epochs} epochs; "
                   "raise train.epochs to continue")
    model, opt, stage_index = None, None, None
    for epoch in range(progress.start_epoch, total_epochs):
        index, stage = stage_at(stages, epoch)
        if index != stage_index:  # a new stage: new trainable set, fresh optimizer, re-wrapped DDP
            opt = _stage_optimizer(base, stage, adaptation, optimizer, lr, momentum, weight_decay,
                                   layer_decay, progress.saved_optimizer(index), out_dir / "last.pt")
            model, stage_index = wrap_model(base, context, device), index
        if getattr(train_data, "set_epoch", None) and train_data.set_epoch(epoch, total_epochs):
            # the data changed (a Mosaic closed): workers hold a copy of the dataset, restart them
            loader, sampler = _make_loader(train_data, context, batch_size, workers, seed,
                                           collate_fn or _collate, device)
            if context.is_main and show_progress:
                tqdm.write(f"epoch {epoch + 1}: mosaic closed for the last "
                           f"{total_epochs - epoch} epochs")
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        stats = train_one_epoch(model, loader, opt, schedule, scaler, epoch=epoch, device=device,
                                base_lr=lr, clip_grad=clip_grad, ema=averaged,
                                show_progress=show_progress and context.is_main,
                                adaptation=adaptation)
        row = {"epoch": epoch + 1, "stage": index + 1, **stats,
               "epoch_s": time.perf_counter() - started, "AP": None, "AP50": None}
        metrics = None
        if context.is_main and val_data is not None and ((epoch + 1) % eval_every == 0
                                                          or epoch + 1 == total_epochs):
            metrics = evaluate_fn(
                averaged.module if averaged is not None else base, val_data,
                backend=eval_backend, device=device, batch_size=max(1, batch_size // context.world_size))
            _record_evaluation(row, metrics, warmup_epochs)
        improved = progress.record(row)
        if context.is_main:
            state = checkpoint_state(base, progress, epoch=epoch + 1, stage_index=index,
                                     averaged=averaged, optimizer=opt, schedule=schedule,
                                     scaler=scaler, adaptation=adaptation, config=config)
            _save_epoch(out_dir, state, progress.history, metrics if improved else None,
                        run_loggers, f"{epoch + 1}/{total_epochs}" if show_progress else None)
        barrier()
    if run_loggers is not None:
        run_loggers.close()
    return {"out_dir": out_dir, "epochs": total_epochs, "best_metric": progress.best_metric,
            "best_epoch": progress.best_epoch, "history": progress.history,
            "warnings": [row["warning"] for row in progress.history if row.get("warning")]}
