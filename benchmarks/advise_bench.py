"""Validation of `detector advise` over the shared data sets (not run by CI).

    DETECTOR_DATA=../shared/data DETECTOR_WEIGHTS=../shared/weights \
      python benchmarks/advise_bench.py advise        # time, gap, quadrant per set; recipes; plots
    python benchmarks/advise_bench.py grid           # = detector bench configs/bench_advise_<set>.yaml
                                                     # for each set, one CPU-lock hold per run
    python benchmarks/advise_bench.py table          # advised vs the grid's best, compute ratio

`advise` runs `detector advise` (the Python API, the CLI's defaults: 32 images, yolov5n) on each
set with the bench schedule fixed (--epochs 3 --image-size 320 --batch-size 8), prints one row
per set and writes runs/advise_bench/<set>/recipe.yaml, the per-set gap plots and
docs/figures/advise_gap_profiles.png (every set on one axis). The advised recipes' model and
train sections are what the `advised` run of configs/bench_advise_<set>.yaml sets.

`table` reads runs/bench_advise_<set>/<run>/results.json (written by `detector bench`) and
runs/advise_bench/advise.json, and prints the validation table: test mAP50 of every grid run,
the advised run, whether it is within 0.02 of the grid's best, and advise time / grid time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bench name -> (data card, split, extra advise arguments)
SETS = {
    "coco128": ("coco128", "train2017", {}),
    "bccd": ("bccd", "train", {}),
    "hit_uav": ("hit_uav_mini", "train", {}),
    "llvip_ir": ("llvip_mini_ir", "train", {}),
}
GRID = ("feature_extraction", "finetune_top", "finetune_all", "head_first", "scratch")
SCHEDULE = {"epochs": 3, "image_size": 320, "batch_size": 8}
OUT = ROOT / "runs" / "advise_bench"
TOLERANCE = 0.02


def run_advise() -> None:
    from detector.advisor import advise
    from detector.advisor.plot import plot_gap_profiles
    from detector.advisor.recipe import write_recipe
    from detector.advisor.report import plan_line
    from detector.tables import format_table

    rows, profiles, results = [], {}, {}
    for name, (card, split, extra) in SETS.items():
        advice = advise(card, split=split, **SCHEDULE, **extra)
        chosen = advice.chosen
        folder = OUT / name
        write_recipe(advice, folder / "recipe.yaml", out_dir=f"runs/advise_bench/{name}/run")
        plot_gap_profiles({p.view: p for p in chosen.profiles}, folder / "gap.png",
                          title=f"{card} under yolov5n")
        profiles[name] = chosen.profiles[0]
        deep = chosen.profiles[0].part_gap(["backbone.3", "neck"])
        results[name] = {"seconds": advice.seconds, "gap": chosen.gap_score, "deep_gap": deep,
                         "parts": list(chosen.candidate.detector.parts()),
                         "stem_gap": chosen.part_gaps.get("stem"),
                         "quadrant": chosen.quadrant.name, "plan": plan_line(chosen.plan)}
        rows.append([name, round(advice.seconds, 1), chosen.gap_score,
                     chosen.part_gaps.get("stem"), deep, chosen.quadrant.name,
                     plan_line(chosen.plan)])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "advise.json").write_text(json.dumps(results, indent=2))
    figure = plot_gap_profiles(profiles, ROOT / "docs" / "figures" / "advise_gap_profiles.png",
                               title="yolov5n (COCO): BatchNorm-statistics gap per layer")
    print(format_table(["set", "advise s", "gap", "stem gap", "deep gap", "quadrant", "advice"],
                       rows))
    print(f"plot: {figure}")


def _stages(train: dict, parts: list[str]):
    from detector.train.freezing import resolve_stages

    return [(s.epochs, tuple(s.train) if s.train != tuple(parts) else ("all",), dict(s.lr_mult))
            for s in resolve_stages(parts, epochs=train.get("epochs"), stages=train.get("stages"),
                                    preset=train.get("preset"), lr_mult=train.get("lr_mult"))]


def _same_run(name: str, parts: list[str]) -> str | None:
    """The grid run whose strategy the advised recipe repeats (None: it differs from all)."""
    import yaml

    from detector.bench.plan import plan_bench
    from detector.config import config_to_dict
    from detector.train.freezing import match_parts

    recipe = yaml.safe_load((OUT / name / "recipe.yaml").read_text())["train"]

    def expanded(train):
        stages = train.get("stages")
        if stages:
            train = {**train, "stages": [{**s, "train": match_parts(parts, list(s["train"]))}
                                         for s in stages]}
        return _stages(train, parts)

    wanted = expanded(recipe)
    plan = plan_bench([ROOT / "configs" / f"bench_advise_{name}.yaml"])
    for run in plan.runs:
        config = config_to_dict(run.config)
        same_rest = (config["train"]["warmup_epochs"] == recipe["warmup_epochs"]
                     and config["model"]["weights"] is not None)
        if run.name in GRID and same_rest and expanded(config["train"]) == wanted:
            return run.name
    return None


def _results(name: str, parts: list[str] | None) -> dict[str, dict]:
    folder = ROOT / "runs" / f"bench_advise_{name}"
    found = {}
    for run in (*GRID, "advised"):
        path = folder / run / "results.json"
        if path.is_file():
            found[run] = json.loads(path.read_text())
    if "advised" not in found and parts:
        same = _same_run(name, parts)
        if same in found:
            found["advised"] = {**found[same], "same_as": same}
    return found


def _row(label: str, found: dict[str, dict], key: str, advised: dict) -> tuple[list, bool]:
    grid = {run: found[run].get(key) for run in GRID if run in found}
    best_run = max(grid, key=lambda r: grid[r] if grid[r] is not None else -1) if grid else None
    best = grid.get(best_run)
    mine = found.get("advised", {}).get(key)
    within = mine is not None and best is not None and mine >= best - TOLERANCE
    grid_s = sum(found[run].get("train_s", 0.0) for run in GRID if run in found)
    seconds = advised.get("seconds")
    ratio = seconds / grid_s if seconds and grid_s else None
    same = found.get("advised", {}).get("same_as")
    shown = f"{mine:.3f} (= {same})" if same and mine is not None else mine
    return ([label] + [grid.get(run) for run in GRID]
            + [shown, best_run, "yes" if within else "no", advised.get("gap"),
               f"{ratio:.1%}" if ratio is not None else None]), within


def _extra(found: dict[str, dict], name: str) -> dict[str, dict]:
    """The llvip_ir runs scored on the 50 IR-only images (score_llvip_extra), train_s kept."""
    folder = ROOT / "runs" / f"bench_advise_{name}"
    extra = {}
    for run, result in found.items():
        path = folder / (result.get("same_as") or run) / "extra_ir_only.json"
        if path.is_file():
            extra[run] = {**json.loads(path.read_text()), "train_s": result.get("train_s"),
                          "same_as": result.get("same_as")}
    return extra


def print_table() -> None:
    """Test mAP50 per run; for llvip_ir the 50 labelled IR-only images decide (its card's test
    split, 5 images and 10 boxes, is shown too but cannot resolve 0.02)."""
    from detector.tables import format_table

    advised = json.loads((OUT / "advise.json").read_text()) if (OUT / "advise.json").is_file() else {}
    rows, hits = [], 0
    for name in SETS:
        found = _results(name, advised.get(name, {}).get("parts"))
        if not found:
            rows.append([name] + [None] * (len(GRID) + 5))
            continue
        row, within = _row(name, found, "AP50", advised.get(name, {}))
        rows.append(row)
        extra = _extra(found, name) if name == "llvip_ir" else {}
        if extra:
            row, within = _row(f"{name} (50 IR-only images)", extra, "AP50", advised.get(name, {}))
            rows.append(row)
        hits += within
    print(format_table(["set", *GRID, "advised", "grid best", "within 0.02", "gap",
                        "advise/grid time"], rows))
    print(f"advised within {TOLERANCE} mAP50 of the grid's best on {hits} of {len(SETS)} sets")


def score_llvip_extra(lock: str) -> None:
    """Score every llvip_ir run's checkpoint on the 50 labelled IR-only images of llvip_mini
    (extra_ir_only/infrared + the VOC Annotations/, 217 boxes): the card's test split has 5
    images and 10 boxes, too few to separate strategies by 0.02 mAP50. Written to
    runs/bench_advise_llvip_ir/<run>/extra_ir_only.json."""
    import fcntl
    import os

    from detector.data.readers import read_dataset
    from detector.evaluation.coco import evaluate
    from detector.models.loading import load_model

    root = Path(os.environ["DETECTOR_DATA"]) / "llvip_mini"
    records = read_dataset(root, format="voc", images=root / "extra_ir_only" / "infrared",
                           labels=root / "Annotations", modalities=["lwir"])
    for run in GRID:
        folder = ROOT / "runs" / "bench_advise_llvip_ir" / run
        checkpoint = folder / "best.pt" if (folder / "best.pt").is_file() else folder / "last.pt"
        if not checkpoint.is_file():
            continue
        with open(lock, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            metrics = evaluate(load_model(checkpoint), records, progress=False)
        stats = {"AP": metrics.stats["AP"], "AP50": metrics.stats["AP50"],
                 "images": len(records), "boxes": records.num_boxes}
        (folder / "extra_ir_only.json").write_text(json.dumps(stats, indent=2))
        print(run, stats)


def run_grid(names: list[str], lock: str) -> None:
    """Train and score the runs of configs/bench_advise_<name>.yaml one at a time, each under
    an exclusive lock on `lock` (the shared-CPU rule: short holds), then write the bench tables
    with `detector bench` (which reuses every finished run)."""
    import dataclasses
    import fcntl

    from detector.bench.run import run_bench
    from detector.bench.plan import plan_bench
    from detector.cli import main as cli

    for name in names:
        bench = ROOT / "configs" / f"bench_advise_{name}.yaml"
        plan = plan_bench([bench])
        for run in plan.runs:
            with open(lock, "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                run_bench(dataclasses.replace(plan, runs=(run,)), show_progress=False, log=print)
        cli(["bench", str(bench)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("advise", "grid", "llvip_extra", "table"))
    parser.add_argument("sets", nargs="*", default=list(SETS), help="for grid: which sets")
    parser.add_argument("--lock", default="/tmp/detector-cpu.lock", help="for grid")
    args = parser.parse_args()
    if args.step == "advise":
        run_advise()
    elif args.step == "grid":
        run_grid(args.sets, args.lock)
    elif args.step == "llvip_extra":
        score_llvip_extra(args.lock)
    else:
        print_table()


if __name__ == "__main__":
    main()
