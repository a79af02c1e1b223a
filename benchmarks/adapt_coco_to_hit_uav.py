"""Setting 1 of the domain-adaptation bench (configs/bench_adapt_coco_hit_uav.yaml): COCO
photographs -> HIT-UAV drone thermal.

    DETECTOR_DATA=../shared/data DETECTOR_WEIGHTS=../shared/weights \\
      .venv/bin/python benchmarks/adapt_coco_to_hit_uav.py prepare     # the source data set
    .venv/bin/python benchmarks/adapt_coco_to_hit_uav.py zero-shot     # the zero-shot row
    detector bench configs/bench_adapt_coco_hit_uav.yaml               # every trained row

`prepare` writes runs/data/coco128_hit_uav/: the coco128 train2017 images that hold a person,
car, bicycle or truck (links to the shared files, nothing copied), their YOLO labels restricted
to those classes and renamed to HIT-UAV's (person -> Person, car -> Car, bicycle -> Bicycle,
truck -> OtherVehicle), and a data.yaml. The bench reads it as `lwir` (one grey channel), the
channel count of the converted model. `zero-shot` scores the bench's base model (yolov5n.pt,
`sum` stem, COCO rows mapped) on the bench's test split without training, at the same image size.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "configs" / "bench_adapt_coco_hit_uav.yaml"
# COCO class index (YOLO labels of coco128) -> HIT-UAV label
CLASS_MAP = {0: 0, 2: 1, 1: 2, 7: 3}
NAMES = ["Person", "Car", "Bicycle", "OtherVehicle"]


def prepare(out: Path) -> None:
    data = Path(os.environ["DETECTOR_DATA"]) / "coco128"
    (out / "images" / "train").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "train").mkdir(parents=True, exist_ok=True)
    kept = boxes = 0
    for label_file in sorted((data / "labels" / "train2017").glob("*.txt")):
        lines = []
        for line in label_file.read_text().splitlines():
            fields = line.split()
            if fields and int(fields[0]) in CLASS_MAP:
                lines.append(" ".join([str(CLASS_MAP[int(fields[0])]), *fields[1:]]))
        if not lines:
            continue
        image = data / "images" / "train2017" / f"{label_file.stem}.jpg"
        link = out / "images" / "train" / image.name
        if not link.exists():
            link.symlink_to(image.resolve())
        (out / "labels" / "train" / label_file.name).write_text("\n".join(lines) + "\n")
        kept, boxes = kept + 1, boxes + len(lines)
    (out / "data.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "images/train", "names": NAMES}, sort_keys=False))
    print(f"{out}: {kept} images, {boxes} boxes ({', '.join(NAMES)})")


def zero_shot(out: Path) -> None:
    from detector.bench.plan import plan_bench
    from detector.recipe import build_model, read_split
    from detector.evaluation.coco import evaluate

    run = plan_bench([BENCH]).runs[0]
    config = run.config
    test = read_split(run.test, run.test.modalities or config.data.modalities)
    detector = build_model(config, list(test.class_names), list(test.modalities), 1)
    metrics = evaluate(detector.eval(), test, backend=config.train.eval_backend,
                       batch_size=config.train.batch_size, device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    result = {"AP": float(metrics.stats["AP"]), "AP50": float(metrics.stats["AP50"]),
              "per_class": {k: {m: float(v) for m, v in s.items()} for k, s in metrics.per_class.items()}}
    (out / "zero_shot.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["prepare", "zero-shot"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out or ROOT / "runs" / "data" / "coco128_hit_uav")
    else:
        zero_shot(args.out or ROOT / "runs" / "bench_adapt_coco_hit_uav")


if __name__ == "__main__":
    main()
