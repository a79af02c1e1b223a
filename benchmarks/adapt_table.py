"""The table and plot of a domain-adaptation bench (configs/bench_adapt_*.yaml), after
`detector bench` and benchmarks/adapt_zero_shot.py:

    python benchmarks/adapt_table.py configs/bench_adapt_llvip_ir.yaml [--figure docs/figures/x.png]

Every run of these benches is scored on the test split after each epoch (data.val is the test
split), so the row's score is the LAST epoch's, read from each run's metrics.csv: the bench's own
results.json scores the best epoch, which is chosen on the test split and would flatter every row.
A bench without a validation split (setting 1) has no per-epoch scores: its results.json scores
the last epoch's weights, and that is the row's score.
Rows: zero-shot (<out_dir>/zero_shot.json), then each run group of the bench (its seeds pooled):
mAP50-95 and mAP50 as mean ± sample standard deviation (n - 1) over the seeds, the seconds per
training epoch (mean; validation excluded) and that time over source-only's. Writes
<out_dir>/adapt_table.md and <out_dir>/adapt_ap50_vs_epoch.png (mean mAP50 over the seeds per
epoch; epoch 0 is the zero-shot model, where every row starts).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def read_groups(bench: Path) -> tuple[Path, dict[str, list[list[dict]]]]:
    """(out_dir, {group: [metrics.csv rows of each finished run]}) in the bench's run order."""
    from detector.bench.plan import plan_bench
    from detector.evaluation.report import read_metrics_csv

    plan = plan_bench([bench])
    groups: dict[str, list[list[dict]]] = {}
    for run in plan.runs:
        path = plan.out_dir / run.name / "metrics.csv"
        finished = (plan.out_dir / run.name / "results.json").is_file()
        if finished and path.is_file():
            rows = read_metrics_csv(path)
            result = json.loads((plan.out_dir / run.name / "results.json").read_text())
            if rows and all(r.get("AP") is None for r in rows) and result.get("checkpoint") == "last.pt":
                # no validation split (setting 1): the bench scored the last epoch's weights
                rows[-1] = {**rows[-1], "AP": result["AP"], "AP50": result["AP50"]}
            groups.setdefault(run.group, []).append(rows)
    return plan.out_dir, groups


def table(out_dir: Path, groups: dict[str, list[list[dict]]]) -> str:
    zero = json.loads((out_dir / "zero_shot.json").read_text()) if (out_dir / "zero_shot.json").is_file() else None
    lines = ["| row | seeds | mAP50-95 | mAP50 | s / epoch | vs source-only |",
             "|---|---:|---:|---:|---:|---:|"]
    if zero:
        lines.append(f"| zero-shot (no training) | - | {zero['AP']:.3f} | {zero['AP50']:.3f} | - | - |")
    epoch_s = {group: statistics.fmean(r["epoch_s"] for rows in runs for r in rows)
               for group, runs in groups.items()}
    for group, runs in groups.items():
        last = [[r for r in rows if r.get("AP") is not None][-1] for rows in runs]
        ratio = (f"{epoch_s[group] / epoch_s['source_only']:.1f}x" if "source_only" in epoch_s
                 else "-")
        lines.append(f"| {group} | {len(runs)} | {_spread([r['AP'] for r in last])} | "
                     f"{_spread([r['AP50'] for r in last])} | {epoch_s[group]:.0f} | {ratio} |")
    return "\n".join(lines)


def plot(out_dir: Path, groups: dict[str, list[list[dict]]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    zero = json.loads((out_dir / "zero_shot.json").read_text()) if (out_dir / "zero_shot.json").is_file() else None
    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for group, runs in groups.items():
        by_epoch: dict[int, list[float]] = {}
        for rows in runs:
            for row in rows:
                if row.get("AP50") is not None:
                    by_epoch.setdefault(int(row["epoch"]), []).append(row["AP50"])
        points = ([(0, zero["AP50"])] if zero else []) + [
            (epoch, statistics.fmean(values)) for epoch, values in sorted(by_epoch.items())]
        axes.plot(*zip(*points), marker="o", label=f"{group} (n={len(runs)})")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch (0: the pretrained model, zero-shot)")
    axes.set_ylabel("test mAP50, mean over seeds")
    axes.set_title(out_dir.name)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("--figure", type=Path, default=None, help="also copy the plot here")
    args = parser.parse_args()
    out_dir, groups = read_groups(args.bench)
    text = table(out_dir, groups)
    (out_dir / "adapt_table.md").write_text(text + "\n")
    plot(out_dir, groups, out_dir / "adapt_ap50_vs_epoch.png")
    if args.figure:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_dir / "adapt_ap50_vs_epoch.png", args.figure)
    print(text)


if __name__ == "__main__":
    main()
