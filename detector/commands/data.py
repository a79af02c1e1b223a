"""`detector data check` and `detector data convert`.

    detector data check SOURCE [--format F] [--split S] [--images DIR] [--labels DIR]
                               [--modalities M ...] [--json FILE] [--no-decode]
        prints the summary tables and one line per problem (`file:line: kind: message`);
        exit 0 clean (info-only problems included), 1 problems found, 2 unusable input
    detector data convert SOURCE --to coco|yolo --out DIR [--split S ...] [--link] [--overwrite]
        writes every split of a card (or the one read) in the other format; DIR must lie outside
        the data set, and files there that detector did not write need --overwrite
    detector data synthetic OUT [--train N] [--val N] [--seed S] [--overwrite]
        writes the synthetic RGB + LWIR data set (OUT/synthetic.yaml, the card the shipped
        configs/synthetic_tiny.yaml reads from data/synthetic)
"""

from __future__ import annotations

import json
from pathlib import Path

from detector.tables import format_table

# the data layer is imported in the functions that read: `detector eval` on two json files
# takes its source arguments from here and must not import torch through it
EXIT_CLEAN, EXIT_PROBLEMS = 0, 1


def add_source_arguments(p, flag: str | None = None) -> None:
    """SOURCE and its --format/--split/--images/--labels/--modalities, as `data check` takes them
    (`flag`: '--data' makes SOURCE a required option, as `detector eval` has it)."""
    help_text = "dataset card name or path, COCO json, YOLO data.yaml or folder, VOC folder"
    if flag:
        p.add_argument(flag, required=True, metavar="SOURCE", help=help_text)
    else:
        p.add_argument("source", help=help_text)
    p.add_argument("--format", default="auto", choices=["auto", "coco", "yolo", "voc"])
    p.add_argument("--split", help="split to read (card split, data.yaml key, VOC ImageSets list)")
    p.add_argument("--images", help="image folder (of the first modality)")
    p.add_argument("--labels", help="labels folder (YOLO .txt or VOC .xml)")
    p.add_argument("--modalities", nargs="+", metavar="M",
                   help="modalities to read: card modality names, or NAME=FOLDER for a path "
                   "(the first one's folder is --images)")


def add_parser(subparsers) -> None:
    data = subparsers.add_parser("data", help="check or convert a dataset")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="summary and problems of a dataset split")
    add_source_arguments(check)
    check.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    check.add_argument("--overwrite", action="store_true",
                       help="replace --json FILE even if detector did not write it")
    check.add_argument("--no-decode", action="store_true",
                       help="do not decode the pixels (skips the corrupt-image check)")
    check.set_defaults(func=run_check)
    convert = sub.add_parser("convert", help="write a dataset as COCO json or YOLO txt")
    add_source_arguments(convert)
    convert.add_argument("--to", required=True, choices=["coco", "yolo"])
    convert.add_argument("--out", required=True, help="output folder")
    convert.add_argument("--link", action="store_true", help="symlink images instead of copying")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace files in --out that detector did not write")
    convert.set_defaults(func=run_convert)
    synthetic = sub.add_parser("synthetic", help="write the synthetic RGB + LWIR data set")
    synthetic.add_argument("out", help="output folder (its card is OUT/synthetic.yaml)")
    synthetic.add_argument("--train", type=int, default=48, help="training images (default 48)")
    synthetic.add_argument("--val", type=int, default=16, help="validation images (default 16)")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--overwrite", action="store_true",
                           help="replace files in OUT that detector did not write")
    synthetic.set_defaults(func=run_synthetic)


def parse_modalities(values):
    """['rgb', 'lwir'] stays a list; ['rgb=visible', 'lwir=ir'] becomes a dict."""
    if not values:
        return None
    if any("=" in v for v in values):
        pairs = [v.split("=", 1) if "=" in v else (v, "") for v in values]
        return {name: folder for name, folder in pairs}
    return list(values)


def _read(args, split):
    from detector.data.readers import read_dataset

    return read_dataset(args.source, split=split, format=args.format,
                        modalities=parse_modalities(args.modalities), images=args.images,
                        labels=args.labels)


def run_check(args) -> int:
    from detector.data.inputs import input_paths
    from detector.outputs import claim_file
    from detector.data.check import check_dataset, format_summary
    from detector.data.records import WARNING

    records = _read(args, args.split)
    if args.json:  # refused before the images are decoded, not after
        json_path = claim_file(args.json, flag="--json", reads=input_paths(records, args.source)[0],
                               overwrite=args.overwrite)
    report = check_dataset(records, decode=not args.no_decode)
    print(format_summary(report.summary))
    if report.problems:
        print()
        for problem in report.problems:
            print(problem)
    errors = len(report.errors)
    warnings = sum(1 for p in report.problems if p.severity == WARNING)
    said = f"{warnings} warning(s), " if warnings else ""
    print(f"\n{errors} problem(s), {said}{len(report.problems) - errors - warnings} note(s)")
    if args.json:
        json_path.write_text(json.dumps(report.to_json(), indent=1))
    return EXIT_PROBLEMS if errors else EXIT_CLEAN


def _splits_to_convert(args) -> list[str | None]:
    from detector.data.cards import find_card, load_card

    if args.split:
        return [args.split]
    card_path = find_card(args.source)
    if card_path is not None:
        return list(load_card(card_path).splits)
    return [None]


def run_convert(args) -> int:
    from detector.data.inputs import input_paths
    from detector.data.writers import write_coco, write_yolo

    out = Path(args.out)
    rows = []
    splits = {split or "train": _read(args, split) for split in _splits_to_convert(args)}
    for name, records in splits.items():
        _, folders = input_paths(records, args.source)
        options = dict(link=args.link, overwrite=args.overwrite, read_folders=folders)
        if args.to == "coco":
            path, left_out = write_coco(records, out, name, **options), 0
        else:
            path, left_out = write_yolo(records, out, name, **options)
        rows.append([name, len(records), records.num_boxes, left_out, len(records.errors),
                     str(path)])
    print(format_table(["split", "images", "boxes", "ignore not written", "problems", "written"],
                       rows))
    print(f"read it back with: detector data check {out / 'card.yaml'} --split {rows[0][0]}")
    return EXIT_CLEAN


def run_synthetic(args) -> int:
    from detector.data.synthetic import make_synthetic_dataset, synthetic_files
    from detector.errors import ConfigError
    from detector.outputs import claim_outputs

    for flag, count in (("--train", args.train), ("--val", args.val)):
        if count < 0:
            raise ConfigError(f"{flag}: expected 0 or more images, got {count}")
    if args.train + args.val == 0:
        raise ConfigError("--train / --val: both are 0; nothing to write")
    claim_outputs(args.out, synthetic_files(args.train, args.val), flag="",
                  overwrite=args.overwrite)
    card = make_synthetic_dataset(args.out, num_train=args.train, num_val=args.val,
                                  seed=args.seed, progress=True)
    print(f"wrote {card} ({args.train} train, {args.val} val images, RGB + LWIR)\n"
          f"check it: detector data check {card} --split train")
    return EXIT_CLEAN
