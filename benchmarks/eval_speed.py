"""Evaluation speed: pycocotools vs faster-coco-eval vs `detector eval --predictions`.

    .venv/bin/python benchmarks/eval_speed.py [--out DIR] [--images 5000] [--seed 0]
                                               [--skip-pycocotools]

Generates a seeded synthetic COCO set (5000 images, 80 classes, ~40k ground-truth boxes, ~400k
detections: jittered copies of the boxes, some with the wrong class, plus background false
positives), writes gt.json, dt.json and one tiny image file per image (the COCO reader checks
that images exist; it never decodes them here), then times each tool from the json files to the
12 stats, json loading included:

- pycocotools: COCO(gt.json), loadRes(dt.json), COCOeval evaluate/accumulate/summarize
- faster-coco-eval: the same with its COCO and COCOeval_faster
- detector: `detector eval --data gt.json --predictions dt.json --json stats.json`, run in this
  process (imports excluded, as for the others)

It asserts that all three give the same 12 stats (|diff| <= 1e-6) and prints times and ratios
(faster-coco-eval and detector run --repeat times, alternated, and the fastest run of each
counts: the machine is shared).
Ground-truth coordinates are multiples of 1/4 pixel (exact in float32, which the records keep)
and areas are w * h, so the three tools see exactly the same boxes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _quarter(values: np.ndarray) -> np.ndarray:
    return np.round(values * 4) / 4


def generate(out_dir: Path, images: int = 5000, classes: int = 80, boxes_per_image: float = 8.0,
             detections_per_box: int = 8, background_per_image: int = 16,
             seed: int = 0) -> tuple[Path, Path]:
    """Write gt.json, dt.json and images/ under out_dir; returns (gt path, dt path)."""
    from detector.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_dir = out_dir / "images"
    image_dir.mkdir(exist_ok=True)
    tiny = cv2.imencode(".png", np.zeros((1, 1), dtype=np.uint8))[1].tobytes()
    category_ids = list(COCO_CATEGORY_IDS[:classes])
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, COCO_CLASSES)]
    sizes = [(640, 480), (640, 427), (500, 375), (480, 640), (640, 640)]
    gt_images, annotations, detections = [], [], []
    for image_id in range(1, images + 1):
        width, height = sizes[rng.integers(len(sizes))]
        name = f"{image_id:012d}.png"
        (image_dir / name).write_bytes(tiny)
        gt_images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        count = rng.poisson(boxes_per_image)
        # sizes from a log-uniform spread so small, medium and large all occur
        w = _quarter(np.clip(np.exp(rng.uniform(np.log(6), np.log(width * 0.8), count)), 2, width))
        h = _quarter(np.clip(w * np.exp(rng.normal(0, 0.4, count)), 2, height))
        x = _quarter(rng.uniform(0, width - w))
        y = _quarter(rng.uniform(0, height - h))
        labels = rng.integers(classes, size=count)
        for i in range(count):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category_ids[labels[i]],
                                "bbox": [float(x[i]), float(y[i]), float(w[i]), float(h[i])],
                                "area": float(w[i] * h[i]), "iscrowd": 0})
        # detections: jittered copies (IoU spread around the thresholds), 10% with a wrong class
        copies = np.repeat(np.arange(count), detections_per_box)
        jitter = rng.normal(0, 0.12, (len(copies), 4)) * np.stack([w, h, w, h], 1)[copies]
        dx, dy = x[copies] + jitter[:, 0], y[copies] + jitter[:, 1]
        dw = np.maximum(w[copies] + jitter[:, 2], 1.0)
        dh = np.maximum(h[copies] + jitter[:, 3], 1.0)
        dl = np.where(rng.random(len(copies)) < 0.1, rng.integers(classes, size=len(copies)),
                      labels[copies])
        scores = np.clip(rng.beta(4, 2, len(copies)), 0.001, 1.0)
        # background false positives with low scores
        fx = rng.uniform(0, width - 20, background_per_image)
        fy = rng.uniform(0, height - 20, background_per_image)
        fw = rng.uniform(4, width / 3, background_per_image)
        fh = rng.uniform(4, height / 3, background_per_image)
        fl = rng.integers(classes, size=background_per_image)
        fs = rng.beta(1.5, 6, background_per_image)
        for bx, by, bw, bh, label, score in zip(
                np.concatenate([dx, fx]).round(2), np.concatenate([dy, fy]).round(2),
                np.concatenate([dw, fw]).round(2), np.concatenate([dh, fh]).round(2),
                np.concatenate([dl, fl]), np.concatenate([scores, fs]).round(5)):
            detections.append({"image_id": image_id, "category_id": category_ids[label],
                               "bbox": [float(bx), float(by), float(bw), float(bh)],
                               "score": float(score)})
    gt_path, dt_path = out_dir / "gt.json", out_dir / "dt.json"
    gt_path.write_text(json.dumps({"images": gt_images, "annotations": annotations,
                                   "categories": categories}))
    dt_path.write_text(json.dumps(detections))
    return gt_path, dt_path


def _run_coco_api(coco_class, eval_class, gt_path: Path, dt_path: Path) -> list[float]:
    """The 12 stats through a pycocotools-style API: COCO, loadRes, evaluate/accumulate/summarize."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_class(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        evaluator = eval_class(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[:12]]


def run_pycocotools(gt_path: Path, dt_path: Path) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _run_coco_api(COCO, COCOeval, gt_path, dt_path)


def run_faster(gt_path: Path, dt_path: Path) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    return _run_coco_api(COCO, COCOeval_faster, gt_path, dt_path)


def run_detector(gt_path: Path, dt_path: Path) -> list[float]:
    from detector.cli import main

    stats_path = gt_path.parent / "detector_stats.json"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["eval", "--data", str(gt_path), "--predictions", str(dt_path),
                     "--backend", "faster", "--json", str(stats_path)])
    if code != 0:
        raise SystemExit(f"detector eval exited with {code}")
    stats = json.loads(stats_path.read_text())["stats"]
    return [float(stats[name]) for name in STAT_NAMES]


def _import_everything() -> None:
    """Import each tool before timing, so imports count for none of them."""
    import faster_coco_eval  # noqa: F401
    import pycocotools.cocoeval  # noqa: F401

    import detector.cli  # noqa: F401
    import detector.commands.evaluate  # noqa: F401
    import detector.data.readers  # noqa: F401
    import detector.evaluation.coco  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/detector_eval_speed", help="working folder")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pycocotools", action="store_true",
                        help="leave out pycocotools (the slow one)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of faster-coco-eval and detector, alternated; the fastest "
                        "of each counts (pycocotools runs once)")
    args = parser.parse_args(argv)

    from detector.tables import format_table

    out_dir = Path(args.out)
    started = time.perf_counter()
    gt_path, dt_path = generate(out_dir, images=args.images, seed=args.seed)
    truth = json.loads(gt_path.read_text())
    detections = len(json.loads(dt_path.read_text()))
    print(f"generated {len(truth['images'])} images, {len(truth['categories'])} classes, "
          f"{len(truth['annotations'])} boxes, {detections} detections "
          f"in {time.perf_counter() - started:.1f} s ({out_dir})")
    _import_everything()

    tools = [("faster-coco-eval", run_faster), ("detector eval --predictions", run_detector)]
    if not args.skip_pycocotools:
        tools.insert(0, ("pycocotools", run_pycocotools))
    timings, stats = {}, {}
    for attempt in range(args.repeat):
        for name, run in tools:
            if name == "pycocotools" and attempt > 0:
                continue
            started = time.perf_counter()
            stats[name] = run(gt_path, dt_path)
            seconds = time.perf_counter() - started
            timings[name] = min(seconds, timings.get(name, seconds))
            print(f"{name}: {seconds:.2f} s", flush=True)

    reference = stats[tools[0][0]]
    for name, values in stats.items():
        worst = max(abs(a - b) for a, b in zip(values, reference))
        if worst > 1e-6:
            raise SystemExit(f"{name} stats differ from {tools[0][0]} by {worst:.2e}: {values} "
                             f"vs {reference}")
    faster = timings["faster-coco-eval"]
    rows = [[name, timings[name], faster / timings[name]] for name, _ in tools]
    print(f"\nfastest of {args.repeat} runs (pycocotools: 1 run)")
    print()
    print(format_table(["tool", "seconds", "speed vs faster-coco-eval"], rows, float_format=".2f"))
    print()
    print(format_table(list(STAT_NAMES), [reference], float_format=".4f"))
    print("\nall tools gave the same 12 stats (|diff| <= 1e-6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
