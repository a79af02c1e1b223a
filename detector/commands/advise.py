"""`detector advise DATA [--model M ...] [--out recipe.yaml]`: measure the data against
pretrained models, print the recommended transfer strategy, write it as a training recipe."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "advise", help="measure data size and domain gap, recommend a transfer strategy",
        description="Measure a data set against pretrained models: size, class overlap, "
                    "channels and bit depth, and the domain gap layer by layer from the models' "
                    "BatchNorm statistics. Print the quadrant of the transfer-learning matrix "
                    "and the recommended strategy, and write it as a recipe for `detector train`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  detector advise hit_uav_mini --out runs/hit_uav_recipe.yaml\n"
               "  detector advise llvip_mini --modalities rgb lwir --unlabelled "
               "$DETECTOR_DATA/llvip_mini/unlabeled_pairs/visible\n"
               "  detector advise bccd --model yolov5n fasterrcnn_mobilenet_v2 --layers",
    )
    p.add_argument("data", help="a dataset card name or path (as `detector data check` takes)")
    p.add_argument("--model", nargs="+", default=None, metavar="M",
                   help="candidate pretrained models: archs, weights names or files "
                        "(default: yolov5n)")
    p.add_argument("--split", help="the labelled split to measure (default: train)")
    p.add_argument("--val-split", help="the recipe's validation split (default: val or test)")
    p.add_argument("--modalities", nargs="+", metavar="NAME", help="e.g. rgb lwir (default: "
                   "the card's)")
    p.add_argument("--out", metavar="YAML", help="write the recipe here (default: "
                   "runs/advise/<data>/recipe.yaml)")
    p.add_argument("--plot", metavar="PNG", help="the gap profile plot (default: beside the recipe)")
    p.add_argument("--run-dir", metavar="DIR", help="the recipe's train.out_dir")
    p.add_argument("--images", type=int, default=32, help="images run through each model (32)")
    p.add_argument("--epochs", type=int, help="fix the schedule's epochs (default: from the data)")
    p.add_argument("--image-size", type=int, help="fix the input size (default: from the objects)")
    p.add_argument("--batch-size", type=int, default=8, help="the recipe's batch size (8)")
    p.add_argument("--unlabelled", metavar="DIR", help="unlabelled target images (measured; "
                   "the advice then points to domain adaptation)")
    p.add_argument("--distance", default="skl", help="per-channel distance: skl or w2 (skl)")
    p.add_argument("--layers", action="store_true", help="also print the per-layer gap table")
    p.set_defaults(func=run)


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def guard_outputs(args, recipe: Path, plot: Path, claim: bool = False) -> None:
    """The recipe and the plot through the write guard (detector/outputs.py): checked before
    anything is measured, claimed (`claim`) once there is something to write. Never into the
    data's card or annotation file, a model or a file of the user's, and no plot among the
    unlabelled images (write_recipe also knows a recipe an earlier advise wrote by its header)."""
    from detector.data.inputs import source_paths
    from detector.errors import ConfigError
    from detector.outputs import check_outputs, claim_file

    if plot.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {plot}: expected an image file name ending in "
                          f"{', '.join(PLOT_SUFFIXES)}")
    reads = source_paths(args.data)[0] + [Path(m) for m in args.model or () if Path(m).is_file()]
    for flag, path in (("--out", recipe), ("--plot", plot)):
        # a PNG in the --unlabelled folder would be measured as one of its images next time
        folders = [Path(args.unlabelled)] if args.unlabelled and flag == "--plot" else []
        guard = dict(flag=flag, reads=reads, read_folders=folders,
                     overwrite=_written_by_advise(path))
        if claim:
            claim_file(path, **guard)
        elif path.is_dir():
            raise ConfigError(f"{flag} {path}: is a folder; expected a file path")
        else:
            check_outputs(path.parent, [path.name], **guard)


def _written_by_advise(path: Path) -> bool:
    from detector.advisor.recipe import HEADER

    try:
        return path.suffix in (".yaml", ".yml") and path.read_text().startswith(HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def run(args) -> int:
    from detector.advisor.advisor import DEFAULT_MODELS, advise
    from detector.advisor.plot import plot_gap_profiles
    from detector.advisor.recipe import write_recipe
    from detector.advisor.report import format_report, layers_table
    from detector.errors import ConfigError

    for flag, value in (("--epochs", args.epochs), ("--image-size", args.image_size),
                        ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected at least 1, got {value}")
    out = Path(args.out) if args.out else Path("runs/advise") / Path(args.data).stem / "recipe.yaml"
    plot = Path(args.plot) if args.plot else out.with_name(out.stem + "_gap.png")
    guard_outputs(args, out, plot)
    advice = advise(args.data, models=args.model or DEFAULT_MODELS, split=args.split,
                    val_split=args.val_split, modalities=args.modalities,
                    max_images=args.images, epochs=args.epochs, image_size=args.image_size,
                    batch_size=args.batch_size, unlabelled=args.unlabelled,
                    distance=args.distance)
    guard_outputs(args, out, plot, claim=True)
    recipe = write_recipe(advice, out, out_dir=args.run_dir)
    chosen = advice.chosen
    plot_gap_profiles({p.view: p for p in chosen.profiles}, plot,
                      title=f"{advice.source} under {chosen.candidate.spec}: gap per BatchNorm layer",
                      distance=advice.distance)
    print(format_report(advice, recipe, plot))
    if args.layers:
        print()
        print(layers_table(chosen))
    return 0
