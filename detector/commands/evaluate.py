"""`detector eval`: COCO metrics of a model on a dataset, or of a results file with no model.

    detector eval --model CKPT_OR_ARCH --data SOURCE [--format F] [--split S] [--images DIR]
                  [--labels DIR] [--modalities M ...] [--backend hotcoco|pycocotools|faster]
                  [--class-map auto] [--batch-size N] [--device D] [--workers N]
                  [--json FILE] [--results FILE] [--plots DIR]
    detector eval --data GT --predictions DT.json [--backend B] [--json FILE] [--plots DIR]

SOURCE takes the same forms and flags as `detector data check`. A results file (DT.json) is a
COCO results list in the dataset's own image and category ids. Prints the per-class and COCO
tables; `--json` writes the 12 stats by name, per-class AP and AP50 and images/s.

The ground truth is the source's own (detector/evaluation/truth.py): a COCO json's own
annotations, restricted to the images and classes read; for YOLO / VOC, the records' boxes.
`--data GT.json --predictions DT.json` alone is pycocotools on those two files: nothing else is
read, no image need exist, and neither torch nor the data layer is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

from detector.commands.data import add_source_arguments, parse_modalities
from detector.errors import ConfigError
from detector.evaluation.backends import BACKENDS, DEFAULT_BACKEND


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", description=__doc__.split("\n\n")[0],
                              help="COCO mAP of a model (or of a results file) on a dataset")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="run checkpoint, registered arch, YOLOv5/ultralytics .pt, "
                      "or weights name")
    what.add_argument("--predictions", metavar="DT.json",
                      help="COCO results json to evaluate (no model)")
    add_source_arguments(p, flag="--data")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS),
                   help="COCO evaluator: all give pycocotools' numbers; hotcoco is the fastest, "
                   "pycocotools the reference")
    p.add_argument("--class-map", choices=["auto"],
                   help="map the model's classes to the dataset's by name (for a model trained "
                   "on other classes, e.g. a COCO detector on a subset of COCO's classes)")
    p.add_argument("--stem-init", choices=["sum", "zero", "mean"],
                   help="when the data has other channels than the model (an RGB model on LWIR "
                   "or RGB+LWIR data): adapt its stem with this init, as `detector convert` does "
                   "(default: sum for 1 channel, zero for extra channels)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--workers", type=int, help="data loading processes (default: 0 on CPU)")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--results", metavar="FILE", help="write the model's COCO results json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --json/--results/--plots files that detector did not write")
    p.add_argument("--plots", metavar="DIR", help="write PR curves and per-class AP bars (PNG)")
    p.set_defaults(func=run)


def _load_detector(args, records):
    from detector.models.loading import load_model

    if args.class_map:
        return load_model(args.model, class_names=records.class_names, class_map=args.class_map,
                          device=args.device)
    detector = load_model(args.model, device=args.device)
    if list(detector.class_names) != list(records.class_names):
        raise ConfigError(f"{args.model}: its classes {list(detector.class_names)[:8]}"
                          f"{'...' if len(detector.class_names) > 8 else ''} differ from the "
                          f"classes of {args.data} {list(records.class_names)}; pass "
                          "--class-map auto to map them by name")
    return detector


def _adapt_to_data(detector, records, init: str | None) -> None:
    """An RGB model on LWIR (1 channel) or RGB+LWIR (4) data: adapt its stem in place, saying so.
    `sum` on a grey image gives exactly the RGB model's output on that image in 3 channels;
    `zero` gives exactly the RGB model's output on the RGB part."""
    from detector.data.images import modality_channels
    from detector.models.surgery import adapt_stem

    channels = sum(modality_channels(m) for m in records.modalities)
    if detector.in_channels == channels:
        return
    if detector.in_channels != 3:
        raise ConfigError(f"{detector.arch}: takes {detector.in_channels} input channels, the data "
                          f"has {channels} ({'+'.join(records.modalities)}); only a 3-channel RGB "
                          "model can be adapted here")
    init = init or ("sum" if channels < 3 else "zero")
    adapt_stem(detector, channels, init)
    detector.modalities = list(records.modalities)
    print(f"note: the model is RGB and the data {'+'.join(records.modalities)} ({channels} "
          f"channel{'s' if channels > 1 else ''}): its stem was adapted with the `{init}` init, as `detector convert "
          f"--to {'ir' if channels == 1 else 'rgbt'} --init {init}` does")


def guard_outputs(args, reads: list[Path], read_folders=()) -> None:
    """--json / --results / --plots through the write guard (detector/outputs.py), before the
    model runs: never over the data, the model or the predictions read, and no --plots folder
    inside the data set's folders (its PNGs would become images of the data set)."""
    from detector.outputs import claim_outputs

    reads = reads + [Path(p) for p in (args.model, args.predictions) if p and Path(p).is_file()]
    for flag in ("--json", "--results"):
        path = getattr(args, flag[2:])
        if path:
            claim_outputs(Path(path).parent, [Path(path).name], flag=flag, reads=reads,
                          overwrite=args.overwrite)
    if args.plots:
        claim_outputs(args.plots, ["pr_curves.png", "class_ap.png"], flag="--plots", reads=reads,
                      read_folders=read_folders, overwrite=args.overwrite)


def _two_files(args) -> bool:
    """--data GT.json --predictions DT.json and no flag that asks for the records' view."""
    return bool(args.predictions) and Path(args.data).suffix.lower() == ".json" \
        and Path(args.data).is_file() and args.format in ("auto", "coco") \
        and not (args.split or args.images or args.labels or args.modalities)


def _evaluate(args):
    if _two_files(args):
        from detector.evaluation.files import evaluate_files

        guard_outputs(args, [Path(args.data)])
        return evaluate_files(args.data, args.predictions, backend=args.backend,
                              precision=bool(args.plots))
    from detector.data.inputs import input_paths
    from detector.data.readers import read_dataset
    from detector.evaluation.coco import evaluate, evaluate_predictions
    from detector.evaluation.results import gc_paused
    from detector.runtime import check_workers, resolve_device

    args.device = resolve_device(args.device, "--device") if args.model else None
    check_workers(args.workers, "--workers")

    with gc_paused():  # a large annotation json loads about twice as fast
        records = read_dataset(args.data, split=args.split, format=args.format,
                               modalities=parse_modalities(args.modalities), images=args.images,
                               labels=args.labels)
    guard_outputs(args, *input_paths(records, args.data))
    if records.errors:
        print(f"note: {len(records.errors)} problem(s) in {args.data}; boxes and images that "
              f"could not be used are left out (see `detector data check {args.data}`)")
    if args.predictions:
        return evaluate_predictions(records, args.predictions, backend=args.backend)
    detector = _load_detector(args, records)
    _adapt_to_data(detector, records, args.stem_init)
    return evaluate(detector, records, backend=args.backend, batch_size=args.batch_size,
                    device=args.device, workers=args.workers, results_path=args.results)


def run(args) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive number, got {args.batch_size}")
    metrics = _evaluate(args)
    print(metrics.table())
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics.to_dict(), indent=2) + "\n")
    if args.plots:
        from detector.evaluation.report import plot_metrics

        for written in plot_metrics(metrics, args.plots):
            print(f"wrote {written}")
    return 0
