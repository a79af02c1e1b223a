"""`detector demo [--out DIR] [--seed N] [--epochs E]`: the toolkit end to end on its own data.

Steps, each a function below:
1. generate the synthetic RGB + LWIR dataset (detector.data.synthetic) into OUT/data,
2. read every split back through `read_dataset` and its card, and check it as `data check` does,
3. fine-tune a small Faster R-CNN (MobileNetV2 FPN) on RGB + LWIR for about a minute on CPU:
   the ImageNet backbone where it resolves (DETECTOR_WEIGHTS, the cache, or a download),
   its stem adapted to 4 channels with the `zero` init; from scratch, and saying so, otherwise,
4. evaluate the best checkpoint on the val split and print the mAP table.
The run folder OUT/run is a normal `detector train` run: config.yaml, checkpoints, metrics.csv
and plots. Exit 0 when the data is clean and training finished, 1 when the check found problems.
"""

from __future__ import annotations

import time
from pathlib import Path

from detector.data.check import check_dataset
from detector.data.readers import read_dataset
from detector.data.synthetic import make_synthetic_dataset
from detector.errors import WeightsError
from detector.tables import format_table

DEFAULT_OUT = Path("runs") / "demo"
# The ImageNet backbone: the file shipped beside the data, then torchvision's own (downloaded).
BACKBONES = ("mobilenet_v2_imagenet", "mobilenet_v2_imagenet1k_v1")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="generate the synthetic RGB+LWIR dataset, check it, "
                              "fine-tune a small Faster R-CNN on it and print its mAP")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed of the dataset and the training")
    p.add_argument("--epochs", type=int, default=6,
                   help="training epochs (default 6, about a minute on 2 CPU cores; 0: data only)")
    p.set_defaults(func=run)


def generate(out: Path, seed: int) -> Path:
    """Step 1: the synthetic dataset in out/data; returns its card."""
    from detector.data.synthetic import synthetic_files
    from detector.outputs import claim_outputs

    # the demo's own previous data is replaced; a file of the user's is not
    claim_outputs(out / "data", synthetic_files(), flag="--out")
    print(f"[1/4] generating the synthetic RGB + LWIR dataset in {out / 'data'}")
    return make_synthetic_dataset(out / "data", seed=seed, progress=True)


def check(card: Path) -> int:
    """Step 2: read each split back and check it; prints a table, returns the number of errors."""
    from detector.data.cards import load_card

    print(f"[2/4] reading it back with read_dataset({str(card)!r}) and checking it")
    rows, errors = [], 0
    for split in load_card(card).splits:
        records = read_dataset(str(card), split=split)
        report = check_dataset(records, progress=False)
        summary = report.summary
        rows.append([split, summary["images"], summary["boxes"], "+".join(records.modalities),
                     len(report.errors)])
        for problem in report.problems:
            print(problem)
        errors += len(report.errors)
    print(format_table(["split", "images", "boxes", "modalities", "problems"], rows))
    return errors


def backbone_weights() -> str | None:
    """The first ImageNet MobileNetV2 file that resolves, or None (training from scratch)."""
    from detector.weights import resolve

    reasons = []
    for name in BACKBONES:
        try:
            resolve(name)
            return name
        except WeightsError as e:
            reasons.append(str(e))
    print("no ImageNet backbone could be found or downloaded, so the demo trains from scratch "
          "(expect a low mAP):\n  " + "\n  ".join(reasons))
    return None


def demo_config(card: Path, run_dir: Path, epochs: int, seed: int, backbone: str | None) -> dict:
    """The training recipe, as a `detector train` config."""
    return {
        "model": {
            "arch": "fasterrcnn_mobilenet_v2", "backbone_weights": backbone, "stem_init": "zero",
            # The images are 160x128 with 14..44 px objects: half-size anchors (16..256 px), and
            # fewer RoIs and proposals than torchvision's defaults, which are sized for COCO.
            "options": {"min_size": 128, "max_size": 160, "anchor_scale": 0.5,
                        "box_batch_size_per_image": 64, "rpn_post_nms_top_n_train": 200,
                        "rpn_post_nms_top_n_test": 100},
        },
        "data": {
            "train": {"source": str(card), "split": "train"},
            "val": {"source": str(card), "split": "val"},
            "modalities": ["rgb", "lwir"],
            "augment": [{"name": "HorizontalFlip", "p": 0.5}],
        },
        "train": {"epochs": epochs, "batch_size": 2, "lr": 0.005, "warmup_epochs": 1,
                  "eval_every": epochs, "amp": False, "workers": 0, "seed": seed,
                  "out_dir": str(run_dir)},
    }


def train(card: Path, out: Path, epochs: int, seed: int) -> Path:
    """Step 3: fine-tune; returns the run folder."""
    from detector.config import config_from_dict
    from detector.recipe import train_from_config

    run_dir = out / "run"
    from detector.run_folder import RUN_FILES
    from detector.outputs import claim_outputs, remove_outputs

    remove_outputs(run_dir, RUN_FILES)  # the demo's own previous run; nothing it did not write
    claim_outputs(run_dir, RUN_FILES, flag="--out")
    backbone = backbone_weights()
    config = config_from_dict(demo_config(card, run_dir, epochs, seed, backbone), origin="demo")
    what = f"ImageNet {backbone}" if backbone else "no pretrained weights"
    print(f"[3/4] fine-tuning fasterrcnn_mobilenet_v2 ({what}) on RGB + LWIR for {epochs} "
          f"epochs in {run_dir}")
    start = time.perf_counter()
    train_from_config(config)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    return run_dir


def evaluate_best(card: Path, run_dir: Path) -> None:
    """Step 4: the best checkpoint on the val split, as `detector eval` prints it."""
    from detector.checkpoint import load_checkpoint
    from detector.evaluation.coco import evaluate
    from detector.models.loading import detector_from_checkpoint

    print(f"[4/4] evaluating {run_dir / 'best.pt'} on the val split")
    detector = detector_from_checkpoint(load_checkpoint(run_dir / "best.pt"))
    records = read_dataset(str(card), split="val", modalities=["rgb", "lwir"])
    print(evaluate(detector, records, device="cpu").table())


def run(args) -> int:
    from detector.errors import ConfigError

    if args.epochs < 0:
        raise ConfigError(f"--epochs: expected 0 (data only) or more, got {args.epochs}")
    out = Path(args.out)
    card = generate(out, args.seed)
    errors = check(card)
    if errors:
        print(f"{errors} problem(s) in the generated data; not training")
        return 1
    if args.epochs > 0:
        run_dir = train(card, out, args.epochs, args.seed)
        evaluate_best(card, run_dir)
        print(f"\nrun folder: {run_dir} (plots, metrics.csv, best.pt)\n"
              f"evaluate it yourself: detector eval --model {run_dir / 'best.pt'} --data {card} "
              f"--split val --modalities rgb lwir")
    print(f"check the data yourself: detector data check {card} --split train")
    return 0
