"""A recipe (a validated `Config`) -> the datasets, the Detector and `fit`'s arguments: the one
place where a config becomes a run, for `detector train`, `detector bench`, the demo and Python:

    from detector import load_config, train_from_config
    result = train_from_config(load_config("configs/yolo_custom.yaml", ["train.epochs=3"]))

`fit` takes explicit arguments, one per TrainConfig field (`fit_arguments` derives them from the
dataclass, so a new training setting is added in config.py and engine.py and nowhere else).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from detector.config import Config, SourceConfig, TrainConfig, config_to_dict
from detector.errors import CheckpointError, ConfigError, DatasetError

# TrainConfig fields that are not `fit` arguments as they are
_NOT_FIT = ("out_dir",)


def read_split(source: SourceConfig, modalities):
    """The records of one data split of the recipe."""
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
    """(train dataset, val dataset or None, class names, modalities) from the data section."""
    from detector.data.dataset import DetectionDataset
    from detector.data.transforms import build_transforms

    data = config.data
    train_records = read_split(data.train, data.train.modalities or data.modalities)
    if not train_records.class_names:  # before the label problems it causes are counted
        raise DatasetError(f"data.train: {train_records.source} names no classes; expected at "
                           "least one (YOLO data.yaml `names`, a card's `classes`, COCO "
                           "`categories`, or VOC <object><name>)")
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
    if model.in_channels is not None and model.in_channels != in_channels:
        raise ConfigError(f"model.in_channels: {model.in_channels}, but the data "
                          f"({'+'.join(modalities)}) gives {in_channels} channel(s); leave it "
                          "out to take it from data.modalities")
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
        try:
            detector = build_detector(model.arch, class_names, weights=model.weights,
                                      backbone_weights=model.backbone_weights,
                                      in_channels=3 if pretrained else in_channels,
                                      class_map=class_map, **dict(model.options))
        except (TypeError, ValueError) as e:  # a family option of the wrong kind ('big' for a size)
            raise ConfigError(f"model.options: {model.arch} cannot be built with "
                              f"{dict(model.options)}: {e}") from e
    if detector.in_channels != in_channels:
        adapt_stem(detector, in_channels, model.stem_init)
    detector.modalities = list(modalities)
    return detector


def adapt_arguments(config: Config):
    """fit's `adapt` argument from train.adapt (None without it): the target images are read
    with the training transforms, for the modalities of the model unless the target names its own."""
    from detector.adapt.adaptation import AdaptSpec, MethodSpec
    from detector.adapt.target import target_dataset

    adapt = config.train.adapt
    if adapt is None:
        return None
    target = adapt.target

    def build_target(modalities: list[str]):
        return target_dataset(target.source, list(target.modalities or modalities),
                              config_to_dict(config)["data"]["augment"], config.model.image_size,
                              split=target.split, format=target.format, images=target.images)

    methods = tuple(MethodSpec(m.name, m.weight, m.start_epoch, m.ramp_epochs, dict(m.options))
                    for m in adapt.methods)
    return AdaptSpec(target=build_target, methods=methods, batch_size=adapt.batch_size)


def fit_arguments(config: Config) -> dict:
    """`fit`'s keyword arguments: one per TrainConfig field (but out_dir), as plain data."""
    train = config.train
    arguments = {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainConfig)
                 if f.name not in _NOT_FIT}
    if train.stages is not None:
        arguments["stages"] = [{"epochs": s.epochs, "train": list(s.train),
                                "lr_mult": dict(s.lr_mult)} for s in train.stages]
    arguments["lr_mult"] = dict(train.lr_mult)
    arguments["loggers"] = list(train.loggers)
    arguments["adapt"] = adapt_arguments(config)
    return arguments


@dataclass
class PreparedRun:
    """Everything a run needs, built and checked, before the first step."""

    config: Config
    detector: object
    train_data: object
    val_data: object
    class_names: list[str]
    out_dir: Path
    resume: bool

    def fit(self, show_progress: bool = True) -> dict:
        from detector.train.engine import fit

        return fit(self.detector, self.train_data, self.val_data, out_dir=self.out_dir,
                   resume=self.resume, config=config_to_dict(self.config),
                   show_progress=show_progress, **fit_arguments(self.config))


def prepare_run(config: Config, out_dir=None, resume: bool = False) -> PreparedRun:
    """Read the data and build the Detector of `config` (with `resume`, the architecture of
    out_dir/last.pt, whose weights and state `fit` then loads)."""
    from detector.checkpoint import load_checkpoint
    from detector.models.loading import detector_from_checkpoint

    out_dir = Path(out_dir or config.train.out_dir)
    train_data, val_data, class_names, modalities = build_data(config)
    if resume:
        state = load_checkpoint(out_dir / "last.pt")
        if list(state["class_names"]) != class_names:
            raise CheckpointError(f"{out_dir / 'last.pt'}: trained for {state['class_names']}, "
                                  f"but the data has {class_names}")
        detector = detector_from_checkpoint(state, prefer_ema=False)
    else:
        from detector.train.seeding import seed_everything

        channels = int(train_data[0][0].shape[0])  # what the data layer really produces
        # Fresh layers (a new head, an adapted stem) are drawn from the seed, so every torchrun
        # process and a single-process run of the same recipe start from the same weights.
        seed_everything(config.train.seed)
        detector = build_model(config, class_names, modalities, channels)
    return PreparedRun(config, detector, train_data, val_data, class_names, out_dir, resume)


def train_from_config(config: Config, out_dir=None, resume: bool = False,
                      show_progress: bool = True) -> dict:
    """Train the recipe `config` into out_dir (default train.out_dir); returns fit's result
    {"out_dir", "epochs", "best_metric", "best_epoch", "history"}.

        >>> result = train_from_config(load_config("configs/synthetic_tiny.yaml"))  # doctest: +SKIP
    """
    return prepare_run(config, out_dir, resume).fit(show_progress=show_progress)
