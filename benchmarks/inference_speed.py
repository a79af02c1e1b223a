"""Validation speed: `detector`'s evaluate vs ultralytics' own `model.val()`, same model file.

    DETECTOR_DATA=../shared/data .venv/bin/python benchmarks/inference_speed.py \\
        --model runs/yvu_converted/theirs/weights/last.pt --data bccd --split test \\
        --image-size 320 [--batch 16] [--repeat 2] [--device cpu]

`--image-size`: the size the model was trained at (the yolo_vs_ultralytics model: 320).

Both load the same ultralytics checkpoint and go from image files to the COCO metrics of one
split: decode, letterbox, network, NMS (conf 0.001, IoU 0.7, 300 detections), matching. Each
side runs `--repeat` times, alternated, after one untimed warm-up each (ultralytics builds its
label cache, both fill the OS file cache); the fastest run counts. Images/s = images / wall s.
The mAP of both is printed as a check that they did the same work (theirs is ultralytics' own
metric, ours the COCO one: close, not identical).

YOLOv5's own val.py (for the classic yolov5n.pt) is not installed here, and ultralytics 8 cannot
load classic YOLOv5 files, so this compares on an ultralytics-format model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402

from detector.data.readers import read_dataset  # noqa: E402
from detector.data.writers import write_yolo  # noqa: E402
from detector.evaluation.coco import evaluate  # noqa: E402
from detector.models.ultralytics import import_checkpoint  # noqa: E402
from detector.tables import format_table  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an ultralytics detection checkpoint")
    parser.add_argument("--data", default="bccd", help="dataset card or folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--image-size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2,
                        help="data loading processes, both sides (ultralytics' own default on "
                             "this 2-core machine is 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both (default: ultralytics' choice)")
    return parser.parse_args(argv)


def run_ours(args, records) -> tuple[float, float]:
    """(seconds, mAP50-95) of detector's evaluate on the split."""
    detector = import_checkpoint(args.model)
    detector.image_size = args.image_size
    start = time.perf_counter()
    metrics = evaluate(detector, records, batch_size=args.batch, device=args.device,
                       workers=args.workers, progress=False)
    return time.perf_counter() - start, metrics.stats["AP"]


def run_theirs(args, data_yaml: Path, project: Path) -> tuple[float, float]:
    """(seconds, mAP50-95) of ultralytics' model.val on the same split."""
    from ultralytics import YOLO

    model = YOLO(args.model, task="detect")
    start = time.perf_counter()
    metrics = model.val(data=str(data_yaml), split="val", imgsz=args.image_size, batch=args.batch,
                        conf=0.001, iou=0.7, max_det=300, device=args.device, plots=False,
                        verbose=False, project=str(project), name="val", exist_ok=True, half=False,
                        workers=args.workers)
    return time.perf_counter() - start, float(metrics.box.map)


def main(argv=None) -> None:
    args = parse_args(argv)
    from ultralytics.utils import NUM_THREADS

    args.threads = args.threads or NUM_THREADS
    records = read_dataset(args.data, split=args.split)
    work = Path(tempfile.mkdtemp(prefix="inference_speed_"))
    write_yolo(records, work / "data", "val", link=True)
    data_yaml = work / "data.yaml"
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(records.class_names))
    data_yaml.write_text(f"path: {(work / 'data').resolve()}\ntrain: images/val\nval: images/val\n"
                         f"names:\n{names}\n")
    sides = {"detector eval": lambda: run_ours(args, records),
             "ultralytics val": lambda: run_theirs(args, data_yaml, work)}
    best = {}
    for round_index in range(args.repeat + 1):  # round 0: warm-up, not counted
        for name, side in sides.items():
            torch.set_num_threads(args.threads)
            seconds, ap = side()
            print(f"round {round_index} {name}: {seconds:.2f} s, mAP50-95 {ap:.4f}")
            if round_index > 0 and (name not in best or seconds < best[name][0]):
                best[name] = (seconds, ap)
    count = len(records)
    rows = [[name, count, seconds, count / seconds, ap] for name, (seconds, ap) in best.items()]
    print(f"\n{args.model} on {args.data} {args.split}: {count} images at {args.image_size} px, "
          f"batch {args.batch}, device {args.device}, {args.threads} CPU threads, "
          f"{args.workers} loader workers")
    print(format_table(["path", "images", "seconds", "images/s", "mAP50-95"], rows))
    ours, theirs = best["detector eval"][0], best["ultralytics val"][0]
    print(f"speed ratio (ours / theirs, images/s): {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
