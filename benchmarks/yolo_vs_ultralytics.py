"""Our `fit` vs ultralytics' own `model.train()`, from the same initial weights, on any data set.

    DETECTOR_DATA=../shared/data DETECTOR_WEIGHTS=../shared/weights \\
      .venv/bin/python benchmarks/yolo_vs_ultralytics.py --init yolov5nu_from_v5.pt \\
        [--data bccd] [--train-split train] [--test-split test] [--modality lwir] \\
        [--epochs 10] [--image-size 640] [--batch 16] [--threads 1] [--out runs/yolo_vs_ul]

`--init`: what both runs start from: a `detector convert --model yolov5n.pt --to yolov5nu`
output (for thermal data, that converted once more with `--to ir`: a 1-channel stem), an
ultralytics .pt, or an arch name (then seeded random weights: training from scratch). The network
is rebuilt once, here, for the data's classes: every tensor of the init whose shape is unchanged
is kept, the class branch starts fresh (`convert` leaves the head fresh anyway). The result is
written as an ultralytics checkpoint (the whole module pickled, as ultralytics writes it) so that
ultralytics loads exactly the same weights; it would otherwise drop the 80-class head itself.
One-channel data (`--modality lwir`, or a card whose only modality is lwir) goes to ultralytics
with `channels: 1` in its data.yaml: it then reads the images as grey, as we do.

Both train on the train split at the same image size, batch, epochs, optimizer (SGD, momentum
0.937), warmup, cosine decay and EMA. Augmentation: ultralytics keeps its own (mosaic, HSV,
flips, scale 0.5, translate 0.1; `--their-augment plain` turns mosaic off). Ours
(`--our-augment`): `mosaic` (default) is a YOLO-strength list (flips, affine scale 0.5-1.5 and
translate 0.1, HSV on rgb, brightness/contrast on lwir) after our Mosaic; `recipe` is that list
without Mosaic; `default` the toolkit's default augmentation (what configs/yolo_custom.yaml
uses since the ablation in benchmarks/README.md).
`--close-mosaic N` turns mosaic off for the last N epochs on both sides (default 0: never, on
both; ultralytics' own default, 10, would close it from the first epoch of a 10-epoch run and
never in a 3-epoch one). Learning rates: ultralytics lr0 0.01 per 64 images (its nominal batch;
loss x batch size); ours lr 0.01 x batch / 16 with the adapter's loss scale (see
detector/models/ultralytics/loss.py), i.e. the same step per image. Loss gains (box 7.5, cls
0.5, dfl 1.5) and the EMA (decay 0.9999, ramp 2000 updates) are ultralytics' own on both sides.

Both final models (ours: EMA weights; theirs: its last.pt, EMA too) are evaluated by the same
code: `detector.evaluation.evaluate` with the pycocotools backend on the test split, letterboxed
to the training size, conf 0.001, IoU 0.7. Wall time per epoch excludes validation on both sides
(theirs is measured between its epoch-start and epoch-end callbacks, ours by `fit`, which
evaluates nothing here). The figures are appended to `--results` (JSON lines) for
benchmarks/parity_table.py.

Runs offline: ultralytics is told so (YOLO_OFFLINE, plots off, AMP check off on CPU).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no downloads, no hub

import torch  # noqa: E402
import yaml  # noqa: E402

from detector.data.dataset import DetectionDataset  # noqa: E402
from detector.data.readers import read_dataset  # noqa: E402
from detector.data.transforms import build_transforms  # noqa: E402
from detector.data.writers import write_yolo  # noqa: E402
from detector.evaluation.coco import evaluate  # noqa: E402
from detector.models.loading import load_model  # noqa: E402
from detector.models.registry import build_detector  # noqa: E402
from detector.models.ultralytics import YOLODetector, import_checkpoint  # noqa: E402
from detector.tables import format_table  # noqa: E402
from detector.train.engine import fit  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", default="yolov5nu",
                        help="initial weights: a checkpoint file or an arch (random init)")
    parser.add_argument("--data", default="bccd", help="dataset card or folder (default bccd)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: cuda if present)")
    parser.add_argument("--modality", default=None,
                        help="the one modality to read (lwir: one grey channel; default: the data's)")
    parser.add_argument("--their-augment", choices=("default", "plain"), default="default",
                        help="plain: ultralytics without mosaic (closer to our augmentation)")
    parser.add_argument("--our-augment", choices=("mosaic", "recipe", "default"), default="mosaic",
                        help="mosaic: Mosaic + a YOLO-strength list; recipe: that list alone; "
                             "default: the toolkit's default augmentation")
    parser.add_argument("--close-mosaic", type=int, default=0,
                        help="mosaic off for the last N epochs, both sides (default 0: never)")
    parser.add_argument("--their-nbs", type=int, default=64,
                        help="ablation: ultralytics' nominal batch (64: it accumulates the "
                             "gradients of 64 / batch batches per step; 16 at batch 16: none)")
    parser.add_argument("--our-lr-mult", type=float, default=1.0,
                        help="ablation: our learning rate times this")
    parser.add_argument("--our-ema", choices=("on", "off"), default="on", help="ablation: our EMA")
    parser.add_argument("--our-warmup-bias-lr", type=float, default=0.0,
                        help="ablation: our biases start at this lr in the warmup (ultralytics: 0.1)")
    parser.add_argument("--results", default=None,
                        help="append each run's figures to this JSON-lines file")
    parser.add_argument("--skip", choices=("ours", "theirs"), default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both runs (default: what ultralytics picks, "
                             "min(8, cores - 1))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/yolo_vs_ultralytics")
    return parser.parse_args(argv)


def initial_detector(spec: str, class_names: list[str], seed: int) -> YOLODetector:
    """The shared starting point, its head remapped to `class_names` (fresh rows: the COCO
    classes do not include blood cells)."""
    if Path(spec).is_file():
        detector = load_model(spec)
    else:
        torch.manual_seed(seed)
        detector = build_detector(spec, class_names)
    if not isinstance(detector, YOLODetector):
        sys.exit(f"{spec}: is a {type(detector).__name__}; this benchmark compares ultralytics models")
    if detector.class_names != class_names:
        # Rebuilt for the new classes as ultralytics would build it (its class branch is as wide
        # as max(channels, classes), so a head remapped in place from 80 classes would not load
        # there); every tensor whose shape is unchanged is carried over, the class branch is fresh.
        torch.manual_seed(seed)
        fresh = build_detector(detector.arch, class_names, in_channels=detector.in_channels)
        target = fresh.model.state_dict()
        kept = {key: value for key, value in detector.model.state_dict().items()
                if key in target and target[key].shape == value.shape}
        fresh.model.load_state_dict(kept, strict=False)
        print(f"{spec}: {len(kept)} of {len(target)} tensors carried over to the "
              f"{len(class_names)}-class network; the rest (class branch) start fresh")
        detector = fresh
    return detector.train()


def write_ultralytics_checkpoint(detector: YOLODetector, path: Path) -> Path:
    """`detector`'s network as ultralytics saves a model: the module pickled in half precision.
    (A file we write ourselves, for ultralytics' own loader.)"""
    import ultralytics

    model = copy.deepcopy(detector.model).float()
    model.criterion = None
    torch.save({"date": datetime.datetime.now().isoformat(), "version": ultralytics.__version__,
                "model": model.half(), "ema": None, "optimizer": None, "updates": None,
                "epoch": -1, "best_fitness": None, "train_args": {}}, path)
    return path


def write_ultralytics_data(train_records, test_records, out: Path, channels: int) -> Path:
    """The splits as a YOLO dataset (images symlinked) and a data.yaml with an absolute path
    (ultralytics resolves a relative one against its own datasets folder)."""
    write_yolo(train_records, out, "train", link=True)
    write_yolo(test_records, out, "test", link=True)
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/test",
            "names": dict(enumerate(train_records.class_names)), "channels": channels}
    path = out / "ultralytics_data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


RECIPE_AUGMENT = [  # YOLO-strength geometry (configs/yolo_custom.yaml's list until the ablation)
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "Affine", "scale": [0.5, 1.5], "translate_percent": [-0.1, 0.1], "p": 0.5},
    {"name": "HueSaturationValue", "hue_shift_limit": 5, "sat_shift_limit": 40,
     "val_shift_limit": 25, "p": 0.5, "modality": "rgb"},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.1, "contrast_limit": 0.2,
     "p": 0.5, "modality": "lwir"},
]


def our_augment(args, modalities: list[str]) -> list | None:
    if args.our_augment == "default":
        return None
    steps = [step for step in RECIPE_AUGMENT if step.get("modality", modalities[0]) in modalities]
    if args.our_augment == "mosaic":
        steps = [{"name": "Mosaic", "p": 1.0, "close_epochs": args.close_mosaic}] + steps
    return steps


def train_ours(detector, train_records, args, out_dir: Path) -> tuple[YOLODetector, list[float]]:
    augment = our_augment(args, list(train_records.modalities))
    dataset = DetectionDataset(train_records, build_transforms(augment, image_size=args.image_size,
                                                               modalities=train_records.modalities))
    result = fit(detector, dataset, None, out_dir=out_dir, epochs=args.epochs, batch_size=args.batch,
                 optimizer="sgd", lr=0.01 * args.batch / 16 * args.our_lr_mult, momentum=0.937,
                 weight_decay=5e-4 * args.batch / 64, warmup_epochs=args.warmup_epochs,
                 warmup_bias_lr=args.our_warmup_bias_lr,
                 cosine=True, final_lr_ratio=0.01, ema=args.our_ema == "on", ema_decay=0.9999,
                 workers=args.workers, seed=args.seed,
                 device=args.device, amp=True, clip_grad=10.0)
    seconds = [row["epoch_s"] for row in result["history"]]
    trained = load_model(out_dir / "last.pt")  # the EMA weights, as saved
    return trained, seconds


def train_theirs(init_path: Path, data_yaml: Path, args, out_dir: Path) -> tuple[YOLODetector, list[float]]:
    from ultralytics import YOLO

    model = YOLO(str(init_path), task="detect")
    epoch_seconds, started = [], {}
    model.add_callback("on_train_epoch_start", lambda trainer: started.update(t=time.perf_counter()))
    model.add_callback("on_train_epoch_end",
                       lambda trainer: epoch_seconds.append(time.perf_counter() - started["t"]))
    plain = {"mosaic": 0.0} if args.their_augment == "plain" else {}
    device = args.device or ("0" if torch.cuda.is_available() else "cpu")
    model.train(data=str(data_yaml), epochs=args.epochs, imgsz=args.image_size, batch=args.batch,
                optimizer="SGD", lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=5e-4,
                warmup_epochs=args.warmup_epochs, cos_lr=True, workers=args.workers,
                device=device, seed=args.seed, project=str(out_dir.parent.resolve()),
                name=out_dir.name, exist_ok=True, plots=False, val=False,
                amp=device != "cpu", pretrained=True, verbose=False,
                close_mosaic=args.close_mosaic, nbs=args.their_nbs, **plain)
    trained = import_checkpoint(out_dir / "weights" / "last.pt")
    return trained, epoch_seconds


def main(argv=None) -> None:
    args = parse_args(argv)
    from ultralytics.utils import NUM_THREADS

    # ultralytics sets torch's CPU threads to min(8, cores - 1) when it selects the CPU; ours
    # gets the same. (On a shared machine, more threads than free cores makes OpenMP spin:
    # 2 threads on a loaded 2-core machine ran a training step 10-40x slower than 1.)
    args.threads = args.threads or NUM_THREADS
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modalities = [args.modality] if args.modality else None
    train_records = read_dataset(args.data, split=args.train_split, modalities=modalities)
    test_records = read_dataset(args.data, split=args.test_split, modalities=modalities)
    class_names = list(train_records.class_names)
    detector = initial_detector(args.init, class_names, args.seed)
    init_path = write_ultralytics_checkpoint(detector, out / "init_ultralytics.pt")
    print(f"initial weights: {args.init} -> {init_path} ({detector.arch}, classes {class_names})")
    rows = []
    runs = []
    if args.skip != "ours":
        ours = import_checkpoint(init_path).train()  # the very weights ultralytics starts from
        runs.append(("detector fit", *train_ours(ours, train_records, args, out / "ours")))
    if args.skip != "theirs":
        data_yaml = write_ultralytics_data(train_records, test_records, out / "yolo_data",
                                           detector.in_channels)
        runs.append(("ultralytics train", *train_theirs(init_path, data_yaml, args, out / "theirs")))
    for name, trained, seconds in runs:
        trained.image_size = args.image_size
        metrics = evaluate(trained, test_records, backend="pycocotools", batch_size=args.batch,
                           device=args.device)
        # the median resists bursts of load from other processes on a shared machine
        rows.append([name, metrics.stats["AP"], metrics.stats["AP50"], statistics.mean(seconds),
                     statistics.median(seconds)])
    print(f"\n{args.data} {args.test_split}, {args.epochs} epochs at {args.image_size} px, batch "
          f"{args.batch}, from {args.init}; device {args.device or 'auto'}, "
          f"{args.threads} CPU threads")
    print(format_table(["run", "mAP50-95", "mAP50", "s / epoch (mean)", "s / epoch (median)"], rows))
    if len(rows) == 2:
        print(f"time ratio (ours / theirs): mean {rows[0][3] / rows[1][3]:.2f}, "
              f"median {rows[0][4] / rows[1][4]:.2f}")
    if args.results:
        setting = {"data": args.data, "train_split": args.train_split, "test_split": args.test_split,
                   "modality": args.modality, "epochs": args.epochs, "image_size": args.image_size,
                   "batch": args.batch, "threads": args.threads, "init": args.init,
                   "our_augment": args.our_augment, "their_augment": args.their_augment,
                   "close_mosaic": args.close_mosaic, "seed": args.seed,
                   "warmup_epochs": args.warmup_epochs, "our_lr_mult": args.our_lr_mult,
                   "our_ema": args.our_ema, "their_nbs": args.their_nbs,
                   "our_warmup_bias_lr": args.our_warmup_bias_lr}
        with open(args.results, "a") as results:
            for name, ap, ap50, mean_s, median_s in rows:
                results.write(json.dumps({**setting, "run": name, "AP": ap, "AP50": ap50,
                                          "epoch_s_mean": mean_s, "epoch_s_median": median_s,
                                          "date": datetime.date.today().isoformat()}) + "\n")


if __name__ == "__main__":
    main()
