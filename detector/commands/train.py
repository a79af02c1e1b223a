"""`detector train CONFIG [key=value ...] [--resume RUN_DIR]`: fine-tune a detector from a recipe.

The config (configs/*.yaml) is validated, then unpacked here into explicit arguments: the data
(read_dataset -> DetectionDataset with the config's augmentations), the model (build_detector
with pretrained weights, head remap for the dataset's classes, stem adapted to its channels), and
`fit`. `--resume RUN_DIR` reads RUN_DIR/config.yaml and continues from RUN_DIR/last.pt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.config import Config, SourceConfig, config_to_dict, load_config
from detector.errors import CheckpointError, ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a detector from a YAML recipe (configs/*.yaml)",
        description="Train a detector from a YAML config. Any key can be overridden on the "
                    "command line as key=value (e.g. train.epochs=3 model.weights=null).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  detector train configs/fasterrcnn_bccd.yaml train.epochs=3\n"
               "  detector train --resume runs/bccd",
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/); omit with --resume")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last.pt (uses RUN_DIR/config.yaml)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in train.out_dir even over files detector did not write")
    p.set_defaults(func=run)


# what `fit` writes into a run folder: claimed before the first step (detector/outputs.py)
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.csv", "training_curves.png",
             "pr_curves.png", "class_ap.png")


def read_split(source: SourceConfig, modalities):
    from detector.data.readers import read_dataset

    return read_dataset(source.source, split=source.split, format=source.format,
                        modalities=list(modalities) if modalities else None,
                        images=source.images, labels=source.labels)


def _report_problems(records, what: str) -> None:
    errors = [p for p in records.problems if getattr(p, "severity", "error") == "error"]
    if errors:
        print(f"{what}: {len(errors)} problems in the labels were skipped "
              f"(see `detector data check {records.source}`)")


def build_data(config: Config):
    """(train dataset, val dataset or None, class names) from the config's data section."""
    from detector.data.dataset import DetectionDataset
    from detector.data.transforms import build_transforms

    data = config.data
    train_records = read_split(data.train, data.train.modalities or data.modalities)
    _report_problems(train_records, "train")
    if len(train_records) == 0:
        raise ConfigError(f"data.train: {data.train.source} (split {data.train.split}) has no images")
    augment = config_to_dict(config)["data"]["augment"]  # plain lists and dicts
    transforms = build_transforms(augment, image_size=config.model.image_size,
                                  modalities=list(train_records.modalities))
    train_data = DetectionDataset(train_records, transforms=transforms)
    val_data = None
    if data.val is not None:
        val_records = read_split(data.val, data.val.modalities or data.modalities)
        _report_problems(val_records, "val")
        if list(val_records.class_names) != list(train_records.class_names):
            raise ConfigError(
                f"data.val: its classes {val_records.class_names} differ from the training "
                f"classes {train_records.class_names}"
            )
        val_data = DetectionDataset(val_records)  # original images: the detector resizes
    return train_data, val_data, list(train_records.class_names), list(train_records.modalities)


def build_model(config: Config, class_names: list[str], modalities: list[str], in_channels: int):
    """The Detector to train: pretrained where the config says, remapped to `class_names`,
    its stem adapted to `in_channels`."""
    from detector.models.loading import load_model
    from detector.models.registry import build_detector
    from detector.models.surgery import adapt_stem

    model = config.model
    in_channels = model.in_channels or in_channels
    # The frozen config holds a read-only mapping; builders get a plain dict.
    class_map = dict(model.class_map) if hasattr(model.class_map, "items") else model.class_map
    if class_map and model.arch is not None and model.weights is None:
        print("warning: model.class_map: ignored, because model.weights is null: there is no "
              "pretrained head whose classes could be mapped", file=sys.stderr)
        class_map = None
    if model.arch is None:  # a checkpoint (a run's best.pt, a YOLOv5 .pt, `detector convert` output)
        detector = load_model(model.weights, class_names=class_names, class_map=class_map)
    else:
        pretrained = model.weights is not None or model.backbone_weights is not None
        # Pretrained stems see 3 channels; they are adapted below with the chosen init.
        detector = build_detector(model.arch, class_names, weights=model.weights,
                                  backbone_weights=model.backbone_weights,
                                  in_channels=3 if pretrained else in_channels,
                                  class_map=class_map, **dict(model.options))
    if detector.in_channels != in_channels:
        adapt_stem(detector, in_channels, model.stem_init)
    detector.modalities = list(modalities)
    return detector


def train_arguments(config: Config) -> dict:
    """The keyword arguments of `fit` that come straight from the config's train section."""
    train = config.train
    stages = None
    if train.stages is not None:
        stages = [{"epochs": s.epochs, "train": list(s.train), "lr_mult": dict(s.lr_mult)}
                  for s in train.stages]
    return dict(
        epochs=train.epochs, stages=stages, preset=train.preset, batch_size=train.batch_size,
        optimizer=train.optimizer, lr=train.lr, momentum=train.momentum,
        weight_decay=train.weight_decay, warmup_epochs=train.warmup_epochs, cosine=train.cosine,
        final_lr_ratio=train.final_lr_ratio, amp=train.amp, clip_grad=train.clip_grad,
        ema=train.ema, ema_decay=train.ema_decay, eval_every=train.eval_every,
        eval_backend=train.eval_backend, lr_mult=dict(train.lr_mult),
        layer_decay=train.layer_decay, workers=train.workers, seed=train.seed,
        device=train.device,
    )


def start_run(detector, train_data, val_data, config: Config, out_dir: Path, *,
              resume: bool = False, overwrite: bool = False, config_file=None) -> None:
    """Everything that can fail before the first step, then the run folder: the device, the
    data (every image decoded, sizes, boxes, classes) and the stages, all checked before
    `out_dir` is claimed (detector/outputs.py), so a run that cannot start leaves nothing."""
    from detector.data.preflight import check_training
    from detector.outputs import claim_outputs
    from detector.runtime import resolve_device

    train = config.train
    resolve_device(train.device, "train.device")
    stages = train_arguments(config)["stages"]
    check_training(train_data, val_data, detector, epochs=train.epochs, stages=stages,
                   preset=train.preset, lr_mult=dict(train.lr_mult), layer_decay=train.layer_decay)
    if resume:
        return
    from detector.commands.data import input_paths

    reads, folders = [], set()
    for data, source in ((train_data, config.data.train), (val_data, config.data.val)):
        if data is not None and source is not None:
            files, dirs = input_paths(data.records, source.source)
            reads += files
            folders.update(dirs)
    reads += [Path(p) for p in (config.model.weights, config_file) if p and Path(p).is_file()]
    claim_outputs(out_dir, RUN_FILES, flag="train.out_dir", reads=reads,
                  read_folders=sorted(folders), overwrite=overwrite,
                  hint=" (or choose another train.out_dir)")


def discard_unstarted_run(out_dir: Path) -> None:
    """A fresh run that failed before its first checkpoint: remove what it wrote (config.yaml,
    the folder it created), never anything else."""
    from detector.outputs import remove_outputs

    if not (Path(out_dir) / "last.pt").exists():
        remove_outputs(out_dir, RUN_FILES)


def run(args) -> int:
    from detector.checkpoint import load_checkpoint
    from detector.models.loading import detector_from_checkpoint
    from detector.tables import format_table
    from detector.train.dist import cleanup, is_main
    from detector.train.engine import fit

    overrides = list(args.overrides)
    if args.resume:
        out_dir = Path(args.resume)
        if args.config:  # with --resume every positional is an override
            overrides.insert(0, args.config)
        if not (out_dir / "config.yaml").is_file():
            raise ConfigError(f"{out_dir}: not a run directory (expected {out_dir / 'config.yaml'})")
        config = load_config(out_dir / "config.yaml", overrides)
    else:
        if not args.config:
            raise ConfigError("detector train: give a CONFIG file (see configs/) or --resume RUN_DIR")
        config = load_config(args.config, overrides)
        out_dir = Path(config.train.out_dir)
        if (out_dir / "last.pt").exists() and not args.overwrite:
            raise ConfigError(
                f"{out_dir}: already holds a run; continue it with `detector train --resume "
                f"{out_dir}` or choose another train.out_dir"
            )
    train_data, val_data, class_names, modalities = build_data(config)
    if args.resume:
        # Only the architecture is needed: fit loads the weights and all training state.
        state = load_checkpoint(out_dir / "last.pt")
        if list(state["class_names"]) != class_names:
            raise CheckpointError(f"{out_dir / 'last.pt'}: trained for {state['class_names']}, "
                                  f"but the data has {class_names}")
        detector = detector_from_checkpoint(state, prefer_ema=False)
    else:
        channels = int(train_data[0][0].shape[0])  # what the data layer really produces
        detector = build_model(config, class_names, modalities, channels)
    arguments = train_arguments(config)
    start_run(detector, train_data, val_data, config, out_dir, resume=bool(args.resume),
              overwrite=args.overwrite, config_file=args.config)
    try:
        result = fit(detector, train_data, val_data, out_dir=out_dir, resume=bool(args.resume),
                     config=config_to_dict(config), **arguments)
        main = is_main()
    except BaseException:
        if not args.resume:
            discard_unstarted_run(out_dir)
        raise
    finally:
        cleanup()
    if main:
        rows = [[str(out_dir), result["epochs"], result["best_epoch"], result["best_metric"]]]
        print(format_table(["run", "epochs", "best epoch", "best mAP50-95"], rows))
    return 0
