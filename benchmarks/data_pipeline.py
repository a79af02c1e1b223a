"""The training data pipeline alone: our DetectionDataset vs ultralytics' YOLODataset.

    DETECTOR_DATA=../shared/data .venv/bin/python benchmarks/data_pipeline.py \\
        [--data bccd] [--split train] [--image-size 640] [--repeat 3]

Each side produces training samples for every image of the split in one process (no loader
workers): decode, augment, letterbox to the training size, boxes with them.
- ours: `DetectionDataset(records, build_transforms(None, image_size))`: the toolkit's default
  augmentation (flips, mild affine, colour; albumentations), float [C,H,W] in 0..1;
- theirs: `build_yolo_dataset(..., mode="train")` with ultralytics' default hyperparameters:
  mosaic of 4 images, random perspective, HSV, flips; uint8 [C,H,W] (the trainer divides by 255
  on the device).
Ultralytics' mosaic decodes 4 images per sample (with its small image cache), so the two do
different amounts of work per sample: the table says what each costs, the ratio is samples/s.
Each side runs `--repeat` passes after one warm-up pass (OS file cache); the fastest counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402

from detector.data.dataset import DetectionDataset  # noqa: E402
from detector.data.readers import read_dataset  # noqa: E402
from detector.data.transforms import build_transforms  # noqa: E402
from detector.data.writers import write_yolo  # noqa: E402
from detector.tables import format_table  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="bccd")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def ours(records, image_size: int):
    dataset = DetectionDataset(records, build_transforms(None, image_size=image_size,
                                                         modalities=records.modalities))
    return lambda: [dataset[i] for i in range(len(dataset))]


def theirs(records, image_size: int, work: Path):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset

    write_yolo(records, work, "train", link=True)
    cfg = get_cfg()
    cfg.imgsz = image_size
    data = {"names": dict(enumerate(records.class_names)), "nc": len(records.class_names),
            "channels": 3}
    dataset = build_yolo_dataset(cfg, str(work / "images" / "train"), 16, data, mode="train")
    return lambda: [dataset[i] for i in range(len(dataset))]


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    records = read_dataset(args.data, split=args.split)
    sides = {"detector DetectionDataset": ours(records, args.image_size),
             "ultralytics YOLODataset (mosaic)": theirs(records, args.image_size,
                                                        Path(tempfile.mkdtemp()))}
    best = {}
    for round_index in range(args.repeat + 1):
        for name, run in sides.items():
            start = time.perf_counter()
            samples = run()
            seconds = time.perf_counter() - start
            print(f"round {round_index} {name}: {len(samples)} samples in {seconds:.2f} s")
            if round_index > 0:
                best[name] = min(best.get(name, seconds), seconds)
    count = len(records)
    rows = [[name, count, seconds, count / seconds] for name, seconds in best.items()]
    print(f"\n{args.data} {args.split}, {count} images, training size {args.image_size}, "
          "one process")
    print(format_table(["pipeline", "samples", "seconds", "samples/s"], rows))
    values = list(best.values())
    print(f"speed ratio (ours / theirs, samples/s): {values[1] / values[0]:.2f}x")


if __name__ == "__main__":
    main()
