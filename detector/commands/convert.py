"""`detector convert`: turn a detector into another one, written as a run checkpoint.

    detector convert --model M --to ir|rgbt [--init sum|zero|mean|random] --out FILE
    detector convert --model yolov5n.pt --to yolov5nu --out FILE

- `--to ir` / `--to rgbt`: the first convolution is rebuilt for 1 thermal channel (modalities
  [lwir]) or RGB + thermal (modalities [rgb, lwir]) with `--init` (default: sum for ir, zero for
  rgbt; see detector/models/surgery.py). Any family.
- `--to ARCH` (an ultralytics arch such as yolov5nu): a classic anchor-based YOLOv5 model's
  backbone and neck (every layer before Detect, same yaml layout) are carried into ultralytics'
  anchor-free version of the same network; its head starts fresh (ultralytics' init).

M is anything `detector eval --model` takes (run checkpoint, arch, YOLOv5/ultralytics .pt,
weights name). FILE is a run checkpoint (epoch 0): `detector train` starts from it
(`model.weights: FILE`), `detector eval --model FILE` evaluates it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from detector.errors import ConfigError

STEM_TARGETS = {"ir": (1, ["lwir"], "sum"), "rgbt": (4, ["rgb", "lwir"], "zero")}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("convert", description=__doc__.split("\n\n")[0],
                              help="RGB -> infrared / RGB+thermal stem, or YOLOv5 -> YOLOv5u")
    p.add_argument("--model", required=True,
                   help="run checkpoint, registered arch, YOLOv5/ultralytics .pt, or weights name")
    p.add_argument("--to", required=True, metavar="TARGET",
                   help="ir (1 thermal channel), rgbt (RGB + thermal), or an ultralytics arch "
                   "(yolov5nu) to carry a classic YOLOv5's backbone and neck into")
    p.add_argument("--init", choices=["sum", "zero", "mean", "random"],
                   help="stem init for ir/rgbt (default: sum for ir, zero for rgbt)")
    p.add_argument("--out", required=True, metavar="FILE", help="checkpoint to write (never "
                   "the --model file itself)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace FILE even if detector did not write it")
    p.set_defaults(func=run)


def convert_stem(detector, target: str, init: str | None = None):
    """Adapt `detector`'s stem in place for `target` ('ir' or 'rgbt'); returns it."""
    from detector.models.surgery import adapt_stem

    channels, modalities, default_init = STEM_TARGETS[target]
    if detector.in_channels != 3:
        raise ConfigError(f"--to {target}: the model has {detector.in_channels} input channels; "
                          "stem conversion starts from an RGB (3-channel) model")
    adapt_stem(detector, channels, init or default_init)
    detector.modalities = list(modalities)
    return detector


def carry_yolov5_layers(source, arch: str):
    """A fresh ultralytics `arch` detector whose layers before the head are `source`'s (a classic
    YOLOv5Detector); returns (detector, number of tensors copied). Raises ConfigError when the
    two networks' layers differ (e.g. yolov5s weights into yolov5nu)."""
    from detector.models.registry import build_detector, list_models
    from detector.models.yolov5 import YOLOv5Detector

    targets = list_models(family="yolo")
    if arch not in targets:
        raise ConfigError(f"--to {arch}: expected ir, rgbt or an ultralytics arch "
                          f"({', '.join(targets)})")
    if not isinstance(source, YOLOv5Detector):
        raise ConfigError(f"--to {arch}: carrying layers into an ultralytics model needs a classic "
                          f"(anchor-based) YOLOv5 model; got a {type(source).__name__}")
    target = build_detector(arch, source.class_names, weights=None, in_channels=source.in_channels)
    source_layers = list(source.model)[:-1]
    target_layers = list(target.model.model)[:-1]  # yolo.py's YOLODetector wraps DetectionModel
    if len(source_layers) != len(target_layers):
        raise ConfigError(f"--to {arch}: the YOLOv5 model has {len(source_layers)} layers before "
                          f"its head, {arch} has {len(target_layers)}")
    copied = 0
    for index, (from_layer, to_layer) in enumerate(zip(source_layers, target_layers)):
        _check_same_layer(index, from_layer, to_layer, arch)
        to_layer.load_state_dict(from_layer.state_dict())
        copied += len(from_layer.state_dict())
    target.modalities = list(source.modalities)
    return target, copied


def _check_same_layer(index: int, from_layer: nn.Module, to_layer: nn.Module, arch: str) -> None:
    theirs, ours = to_layer.state_dict(), from_layer.state_dict()
    if type(from_layer).__name__ != type(to_layer).__name__ or list(theirs) != list(ours):
        raise ConfigError(f"--to {arch}: layer {index} differs ({type(from_layer).__name__} vs "
                          f"{type(to_layer).__name__} in {arch})")
    for name, tensor in ours.items():
        if theirs[name].shape != tensor.shape:
            raise ConfigError(f"--to {arch}: layer {index} {name} has shape {list(tensor.shape)} "
                              f"here but {list(theirs[name].shape)} in {arch} (another model scale?)")


def run(args) -> int:
    from detector.checkpoint import describe_detector, save_checkpoint
    from detector.models.loading import load_model
    from detector.outputs import check_outputs, claim_file
    from detector.tables import format_table

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; expected a checkpoint file path")
    model_file = [Path(args.model)] if Path(args.model).is_file() else []
    # refused before the (slow) model load, claimed only once the conversion has worked
    check_outputs(out.parent, [out.name], flag="--out", reads=model_file, overwrite=args.overwrite)
    source = load_model(args.model)
    if args.to in STEM_TARGETS:
        detector = convert_stem(source, args.to, args.init)
        done = [["stem", f"{args.init or STEM_TARGETS[args.to][2]} init, input channels "
                 f"{detector.in_channels} ({', '.join(detector.modalities)})"],
                ["rest", "unchanged"]]
    else:
        if args.init is not None:
            raise ConfigError(f"--init applies to --to ir / rgbt, not to --to {args.to}")
        detector, copied = carry_yolov5_layers(source, args.to)
        done = [["backbone + neck", f"{copied} tensors copied from {args.model}"],
                ["head", f"fresh ({len(detector.class_names)} classes)"]]
    claim_file(out, flag="--out", reads=model_file, overwrite=args.overwrite)
    save_checkpoint(out, {**describe_detector(detector), "model": detector.state_dict(),
                          "epoch": 0})
    print(format_table(["part", "conversion"], done), file=sys.stderr)
    print(f"wrote {out} (arch {detector.arch})")
    return 0
