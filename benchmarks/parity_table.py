"""The parity table: benchmarks/yolo_vs_ultralytics.py's results (JSON lines) as Markdown.

    python benchmarks/parity_table.py runs/parity/results.jsonl [--ablation]

One row per setting (data, epochs, augmentation on each side) with both tools' test mAP50-95
and mAP50, the mAP50-95 ratio (ours / theirs; the issue's goal: >= 0.95) and the median
seconds per epoch with their ratio (goal: <= 1.0). A setting measured more than once keeps its
last measurement. `--ablation`: one row per run instead, with what was varied (augmentation,
close_mosaic, warmup, our lr multiplier and EMA), for the ablation table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from detector.tables import markdown_table  # noqa: E402

SETTING = ("data", "train_split", "test_split", "epochs", "image_size", "batch", "threads",
           "our_augment", "their_augment", "close_mosaic", "seed", "warmup_epochs",
           "our_lr_mult", "our_ema", "their_nbs", "our_warmup_bias_lr")
NAMES = {"bccd": "bccd", "coco128": "coco128", "hit_uav_mini": "hit_uav_mini (1 ch)",
         "runs/data/llvip_visible_to_ir/data.yaml": "llvip_mini IR (1 ch)"}


def settings(lines: list[dict]) -> dict[tuple, dict[str, dict]]:
    """{setting key: {"detector fit": result, "ultralytics train": result}}, in file order."""
    found: dict[tuple, dict[str, dict]] = {}
    for result in lines:
        found.setdefault(tuple(result.get(k) for k in SETTING), {})[result["run"]] = result
    return found


def ablation_rows(lines: list[dict]) -> list[list]:
    """One row per run, in file order (a run measured twice: both rows)."""
    table = []
    for r in lines:
        ours = r["run"] == "detector fit"
        table.append([NAMES.get(r["data"], r["data"]), r["epochs"], r["run"],
                      r["our_augment"] if ours else r["their_augment"], r["close_mosaic"],
                      r.get("warmup_epochs", 1.0),
                      r.get("our_warmup_bias_lr", 0.0) if ours else 0.1,
                      r.get("our_lr_mult", 1.0) if ours else "-",
                      r.get("our_ema", "on") if ours else "on",
                      "-" if ours else r.get("their_nbs", 64),
                      f"{r['AP']:.3f}", f"{r['AP50']:.3f}", f"{r['epoch_s_median']:.1f}"])
    return table


def rows(found: dict) -> list[list]:
    table = []
    for key, runs in found.items():
        ours, theirs = runs.get("detector fit"), runs.get("ultralytics train")
        if ours is None or theirs is None:
            continue
        setting = dict(zip(SETTING, key))
        if max(ours["AP"], theirs["AP"]) < 0.01:
            ap_ratio = "- (both < 0.01)"
        elif theirs["AP"] == 0:
            ap_ratio = "**inf** (theirs 0)"
        else:
            ap_ratio = f"**{ours['AP'] / theirs['AP']:.2f}x**"
        time_ratio = ours["epoch_s_median"] / theirs["epoch_s_median"]
        row = [NAMES.get(setting["data"], setting["data"]),
               f"{setting['train_split']} -> {setting['test_split']}", setting["epochs"],
               f"{ours['AP']:.3f}", f"{theirs['AP']:.3f}", ap_ratio,
                f"{ours['AP50']:.3f}", f"{theirs['AP50']:.3f}",
                f"{ours['epoch_s_median']:.1f}", f"{theirs['epoch_s_median']:.1f}",
                f"{time_ratio:.2f}x"]
        table.append(row)
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="the --results file of yolo_vs_ultralytics.py")
    parser.add_argument("--ablation", action="store_true", help="show the augmentation columns")
    args = parser.parse_args(argv)
    lines = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    if args.ablation:
        header = ["data", "epochs", "run", "augment", "close mosaic", "warmup", "bias warmup lr", "lr x", "EMA",
                  "nominal batch", "mAP50-95", "mAP50", "s / epoch"]
        print(markdown_table(header, ablation_rows(lines)))
        return
    header = ["data", "split", "epochs", "mAP50-95 ours", "mAP50-95 ultralytics", "ratio",
              "mAP50 ours", "mAP50 ultralytics", "s / epoch ours", "s / epoch ultralytics",
              "time ratio"]
    print(markdown_table(header, rows(settings(lines))))


if __name__ == "__main__":
    main()
