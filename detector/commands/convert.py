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


def run(args) -> int:
    from detector.models.transfer import carry_yolov5_layers

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
