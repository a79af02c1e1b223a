"""Evaluation speed: hotcoco, pycocotools, faster-coco-eval and `detector eval`, two json files each.

    DETECTOR_DATA=../shared/data .venv/bin/python benchmarks/eval_speed.py \\
        [--out DIR] [--images 5000] [--seed 0] [--repeat 3] [--skip TOOL ...]

Two sets, ground truth and results as json files only (no image is written or read):

- coco128: `$DETECTOR_DATA/coco128/annotations/instances_train2017.json` (128 images, 80
  classes, crowd regions) and 3 jittered copies of each of its boxes as detections (seeded);
  skipped when DETECTOR_DATA is not set
- synthetic: a seeded COCO set, 5000 images, 80 classes, ~40k boxes of every size, ~400k
  detections (jittered copies of the boxes, 10% with a wrong class, background false positives)

Each tool goes from the two files to the 12 stats written as json, timed two ways, each as
wall-clock and as CPU seconds (user + system, every thread: steadier on a shared machine):

- whole process: a subprocess from start to exit (interpreter start, imports, json parsing,
  evaluation, stats written). The tools are plain scripts (`SCRIPTS`: COCO, loadRes, COCOeval
  evaluate / accumulate / summarize, stats to json); detector is the `detector` console script:
  `detector eval --data gt.json --predictions dt.json --json stats.json`
- in process: the same work in this process, imports done beforehand

Runs alternate between tools, `--repeat` times, and the fastest of each counts (the machine may
be shared); a run longer than `--long` seconds is not repeated (pycocotools on the synthetic
set). One unmeasured run of each tool first writes the bytecode caches, as an installed package
has them (PYTHONDONTWRITEBYTECODE is cleared for the subprocesses). Every tool's 12 stats must
equal the first tool's to 1e-9, or the script fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# A plain script per tool: run(gt_path, dt_path) -> the 12 stats, through the pycocotools API
# (COCO, loadRes, COCOeval evaluate / accumulate / summarize); SCRIPT_MAIN makes it a program.
SCRIPT = """
{imports}
def run(gt_path, dt_path):
    gt = COCO(gt_path)
    evaluator = {evaluator}(gt, gt.{load}(dt_path), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [float(v) for v in evaluator.stats[:12]]
"""
SCRIPTS = {
    "hotcoco": SCRIPT.format(imports="from hotcoco import COCO, COCOeval",
                             evaluator="COCOeval", load="load_res"),
    "pycocotools": SCRIPT.format(imports="from pycocotools.coco import COCO\n"
                                 "from pycocotools.cocoeval import COCOeval",
                                 evaluator="COCOeval", load="loadRes"),
    "faster-coco-eval": SCRIPT.format(imports="from faster_coco_eval import COCO, COCOeval_faster",
                                      evaluator="COCOeval_faster", load="loadRes"),
}
SCRIPT_MAIN = """
import json, sys
stats = run(sys.argv[1], sys.argv[2])
with open(sys.argv[3], "w") as f:
    json.dump(stats, f)
"""
DETECTOR = "detector eval"


def _quarter(values: np.ndarray) -> np.ndarray:
    return np.round(values * 4) / 4


def _jittered(rng, x, y, w, h, copies: int, sigma: float):
    """`copies` jittered copies of each box [x, y, w, h] (arrays), widths and heights >= 1."""
    index = np.repeat(np.arange(len(x)), copies)
    jitter = rng.normal(0, sigma, (len(index), 4)) * np.stack([w, h, w, h], 1)[index]
    return (index, x[index] + jitter[:, 0], y[index] + jitter[:, 1],
            np.maximum(w[index] + jitter[:, 2], 1.0), np.maximum(h[index] + jitter[:, 3], 1.0))


def _result_dicts(image_ids, category_ids, boxes, scores) -> list[dict]:
    return [{"image_id": int(i), "category_id": int(c), "score": float(s),
             "bbox": [float(v) for v in box]}
            for i, c, box, s in zip(image_ids, category_ids, np.round(boxes, 2),
                                    np.round(scores, 5))]


def generate(out_dir: Path, images: int = 5000, classes: int = 80, boxes_per_image: float = 8.0,
             detections_per_box: int = 8, background_per_image: int = 16,
             seed: int = 0) -> tuple[Path, Path]:
    """Write the synthetic gt.json and dt.json under out_dir; returns their paths."""
    from detector.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

    rng = np.random.default_rng(seed)
    category_ids = np.asarray(COCO_CATEGORY_IDS[:classes])
    categories = [{"id": int(c), "name": n} for c, n in zip(category_ids, COCO_CLASSES)]
    sizes = [(640, 480), (640, 427), (500, 375), (480, 640), (640, 640)]
    gt_images, annotations, detections = [], [], []
    for image_id in range(1, images + 1):
        width, height = sizes[rng.integers(len(sizes))]
        gt_images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg",
                          "width": width, "height": height})
        count = rng.poisson(boxes_per_image)
        # sizes from a log-uniform spread so small, medium and large all occur
        w = _quarter(np.clip(np.exp(rng.uniform(np.log(6), np.log(width * 0.8), count)), 2, width))
        h = _quarter(np.clip(w * np.exp(rng.normal(0, 0.4, count)), 2, height))
        x, y = _quarter(rng.uniform(0, width - w)), _quarter(rng.uniform(0, height - h))
        labels = category_ids[rng.integers(classes, size=count)]
        for i in range(count):
            box = [float(x[i]), float(y[i]), float(w[i]), float(h[i])]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(labels[i]), "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0})
        # jittered copies (IoU spread around the thresholds), 10% with a wrong class
        index, dx, dy, dw, dh = _jittered(rng, x, y, w, h, detections_per_box, 0.12)
        wrong = rng.random(len(index)) < 0.1
        dl = np.where(wrong, category_ids[rng.integers(classes, size=len(index))], labels[index])
        scores = np.clip(rng.beta(4, 2, len(index)), 0.001, 1.0)
        # background false positives with low scores
        n = background_per_image
        background = np.stack([rng.uniform(0, width - 20, n), rng.uniform(0, height - 20, n),
                               rng.uniform(4, width / 3, n), rng.uniform(4, height / 3, n)], 1)
        detections += _result_dicts(
            [image_id] * (len(index) + n),
            np.concatenate([dl, category_ids[rng.integers(classes, size=n)]]),
            np.concatenate([np.stack([dx, dy, dw, dh], 1), background]),
            np.concatenate([scores, rng.beta(1.5, 6, n)]))
    gt_path, dt_path = out_dir / "synthetic_gt.json", out_dir / "synthetic_dt.json"
    gt_path.write_text(json.dumps({"images": gt_images, "annotations": annotations,
                                   "categories": categories}))
    dt_path.write_text(json.dumps(detections))
    return gt_path, dt_path


def coco128_results(gt_path: Path, out_dir: Path, seed: int = 0) -> Path:
    """Write coco128_dt.json: 3 jittered copies of each box of `gt_path`, 10% with a wrong
    class, uniform scores; returns its path."""
    truth = json.loads(gt_path.read_text())
    rng = np.random.default_rng(seed)
    boxes = np.asarray([a["bbox"] for a in truth["annotations"]], dtype=np.float64)
    index, dx, dy, dw, dh = _jittered(rng, *boxes.T, 3, 0.1)
    image_ids = np.asarray([a["image_id"] for a in truth["annotations"]])[index]
    labels = np.asarray([a["category_id"] for a in truth["annotations"]])[index]
    every = np.asarray([c["id"] for c in truth["categories"]])
    wrong = rng.random(len(index)) < 0.1
    labels = np.where(wrong, every[rng.integers(len(every), size=len(index))], labels)
    dt_path = out_dir / "coco128_dt.json"
    dt_path.write_text(json.dumps(_result_dicts(image_ids, labels, np.stack([dx, dy, dw, dh], 1),
                                                rng.random(len(index)))))
    return dt_path


def _detector_command() -> list[str]:
    """The `detector` console script beside this interpreter (what users run), else -m."""
    script = Path(sys.executable).with_name("detector")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "detector.cli"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def whole_process(tool: str, gt: Path, dt: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds from start to exit of `tool` as its own process; the stats land in
    `out`. CPU (user + system, all threads) is the steadier figure on a shared machine."""
    if tool == DETECTOR:
        command = _detector_command() + ["eval", "--data", str(gt), "--predictions", str(dt),
                                         "--json", str(out), "--overwrite"]
    else:
        command = [sys.executable, "-c", SCRIPTS[tool] + SCRIPT_MAIN, str(gt), str(dt), str(out)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started, _children_cpu() - cpu


@contextlib.contextmanager
def _silenced():
    """stdout to /dev/null at the file descriptor: hotcoco's Rust prints past sys.stdout."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def in_process(tool: str, gt: Path, dt: Path, out: Path, runners: dict) -> tuple[float, float]:
    """(wall, CPU) seconds for `tool` to evaluate and write the stats in this process (imports
    done)."""
    cpu, started = time.process_time(), time.perf_counter()
    with _silenced():
        if tool == DETECTOR:
            code = runners[DETECTOR](["eval", "--data", str(gt), "--predictions", str(dt),
                                      "--json", str(out), "--overwrite"])
            if code != 0:
                raise SystemExit(f"detector eval exited with {code}")
        else:
            out.write_text(json.dumps(runners[tool](str(gt), str(dt))))
    return time.perf_counter() - started, time.process_time() - cpu


def read_stats(tool: str, out: Path) -> list[float]:
    data = json.loads(out.read_text())
    return [float(data["stats"][n]) for n in STAT_NAMES] if tool == DETECTOR else data


def measure(name: str, gt: Path, dt: Path, tools: list[str], runners: dict, repeat: int,
            long_s: float, work: Path) -> list[list]:
    """Rows [tool, whole s, whole CPU s, in-process s, in-process CPU s, whole vs hotcoco
    (wall, CPU)] for one set, each the fastest of its runs; checks the stats."""
    best: dict = {}
    stats: dict = {}
    for attempt in range(repeat):
        for tool in tools:
            for mode, timer in (("whole", whole_process), ("in", in_process)):
                key, out = (tool, mode), work / f"{name}_{tool.replace(' ', '_')}_{mode}.json"
                if attempt and best[key] > long_s:
                    continue
                extra = (runners,) if mode == "in" else ()
                seconds, cpu = timer(tool, gt, dt, out, *extra)
                best[key] = min(seconds, best.get(key, seconds))
                best[key + ("cpu",)] = min(cpu, best.get(key + ("cpu",), cpu))
                stats[key] = read_stats(tool, out)
                print(f"  {name} {tool} {mode}: {seconds:.3f} s, CPU {cpu:.3f} s", flush=True)
    reference = stats[(tools[0], "whole")]
    for key, values in stats.items():
        worst = max(abs(a - b) for a, b in zip(values, reference))
        if worst > 1e-9:
            raise SystemExit(f"{name}: {key} stats differ from {tools[0]} by {worst:.1e}")
    if "hotcoco" not in tools:
        return [[tool, best[(tool, "whole")], best[(tool, "whole", "cpu")], best[(tool, "in")],
                 best[(tool, "in", "cpu")], None, None] for tool in tools]
    wall, cpu = best[("hotcoco", "whole")], best[("hotcoco", "whole", "cpu")]
    return [[tool, best[(tool, "whole")], best[(tool, "whole", "cpu")], best[(tool, "in")],
             best[(tool, "in", "cpu")], best[(tool, "whole")] / wall,
             best[(tool, "whole", "cpu")] / cpu] for tool in tools]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder, kept (default: a temporary one, removed)")
    parser.add_argument("--images", type=int, default=5000, help="synthetic set size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="alternated runs; fastest counts")
    parser.add_argument("--long", type=float, default=10.0,
                        help="a tool whose first run takes longer runs once")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(SCRIPTS),
                        help="leave these tools out")
    args = parser.parse_args(argv)

    from detector.cli import main as detector_main

    tools = [DETECTOR] + [t for t in SCRIPTS if t not in args.skip]
    runners = {DETECTOR: detector_main}
    for tool in tools[1:]:
        namespace: dict = {}
        exec(SCRIPTS[tool], namespace)  # imports now, outside the timings
        runners[tool] = namespace["run"]
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        return run_sets(Path(args.out), args, tools, runners)
    with tempfile.TemporaryDirectory(prefix="eval_speed_") as work:  # 45 MB of json, removed
        return run_sets(Path(work), args, tools, runners)


def run_sets(work: Path, args, tools: list[str], runners: dict) -> int:
    """Write the sets under `work`, warm up, measure and print each set's table."""
    from detector.tables import format_table

    sets = []
    data = os.environ.get("DETECTOR_DATA")
    coco128 = Path(data or ".") / "coco128/annotations/instances_train2017.json"
    if data and coco128.is_file():
        sets.append(("coco128", coco128, coco128_results(coco128, work, args.seed)))
    else:
        print("DETECTOR_DATA/coco128 not found: the coco128 set is left out")
    started = time.perf_counter()
    sets.append(("synthetic", *generate(work, images=args.images, seed=args.seed)))
    print(f"generated the synthetic set in {time.perf_counter() - started:.1f} s ({work})")
    for name, gt, dt in sets:
        truth, results = json.loads(gt.read_text()), json.loads(dt.read_text())
        print(f"{name}: {len(truth['images'])} images, {len(truth['categories'])} classes, "
              f"{len(truth['annotations'])} boxes, {len(results)} detections")
    del truth, results  # 400k dicts kept alive would slow the in-process runs' collector
    warmup = work / "warmup"
    warmup.mkdir(exist_ok=True)
    small = generate(warmup, images=20, seed=args.seed)
    for tool in tools:  # unmeasured: bytecode caches written, lazy imports done
        whole_process(tool, *small, warmup / "stats.json")
        in_process(tool, *small, warmup / "stats.json", runners)

    for name, gt, dt in sets:
        rows = measure(name, gt, dt, tools, runners, args.repeat, args.long, work)
        print(f"\n{name}: fastest of {args.repeat} alternated runs (one where over {args.long} s)")
        print(format_table(["tool", "whole s", "whole CPU s", "in-process s", "in-process CPU s",
                            "whole vs hotcoco", "CPU vs hotcoco"], rows, float_format=".3f"))
        values = read_stats(DETECTOR, work / f"{name}_detector_eval_whole.json")
        print(format_table(list(STAT_NAMES), [values], float_format=".4f"))
        print("all tools: the same 12 stats (|diff| <= 1e-9)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
