"""A bench's report: results.csv, results.md, ap_vs_epoch.png and per_class_ap.png.

Each function takes the results dicts of `detector.bench.run.run_bench` (one per run, as in
<run>/results.json) and the bench folder; the run folders' metrics.csv give the per-epoch
validation curves.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from detector.tables import markdown_table

COLUMNS = [  # (header, results.json key, scale)
    ("mAP50-95", "AP", 1.0), ("mAP50", "AP50", 1.0), ("train s", "train_s", 1.0),
    ("train img/s", "train_images_per_s", 1.0), ("eval img/s", "eval_images_per_s", 1.0),
    ("params (M)", "params", 1e-6),
]
# what write_report writes into the bench folder (claimed by detector.bench.run.run_bench)
REPORT_FILES = ("results.csv", "results.md", "ap_vs_epoch.png", "per_class_ap.png")
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _value(result: dict, key: str, scale: float = 1.0):
    value = result.get(key)
    return None if value is None else value * scale


def _class_names(results: list[dict]) -> list[str]:
    return list(dict.fromkeys(name for result in results for name in result.get("per_class", {})))


def run_rows(results: list[dict]) -> tuple[list[str], list[list]]:
    """The main table: one row per run."""
    headers = ["run", "arch", "init", "strategy", *[h for h, _, _ in COLUMNS]]
    rows = [[r["name"], r["arch"], r["init"], r["strategy"],
             *[_value(r, key, scale) for _, key, scale in COLUMNS]] for r in results]
    return headers, rows


def class_rows(results: list[dict], metric: str = "AP") -> tuple[list[str], list[list]]:
    """Per-class `metric`: one row per class, one column per run."""
    headers = ["class", *[r["name"] for r in results]]
    rows = [[name, *[r.get("per_class", {}).get(name, {}).get(metric) for r in results]]
            for name in _class_names(results)]
    return headers, rows


def group_rows(results: list[dict]) -> tuple[list[str], list[list]] | None:
    """Mean and standard deviation of mAP over each run's grid (seeds, ...), or None when no
    run was repeated."""
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["group"], []).append(result)
    if all(len(members) == 1 for members in groups.values()):
        return None
    headers = ["run", "runs", "mAP50-95 mean", "mAP50-95 std", "mAP50 mean", "mAP50 std"]
    rows = []
    for group, members in groups.items():
        row = [group, len(members)]
        for key in ("AP", "AP50"):
            values = [m[key] for m in members if m.get(key) is not None]
            row += [statistics.fmean(values) if values else None,
                    statistics.stdev(values) if len(values) > 1 else None]
        rows.append(row)
    return headers, rows


def write_csv(results: list[dict], path: Path) -> None:
    classes = _class_names(results)
    headers = ["run", "group", "arch", "init", "strategy", "seed", "epochs", "best_epoch", *STATS,
               *[f"{m}/{c}" for c in classes for m in ("AP", "AP50")],
               "train_s", "train_images_per_s", "eval_images_per_s", "params", "test", "warnings"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        for r in results:
            per_class = r.get("per_class", {})
            row = [r["name"], r["group"], r["arch"], r["init"], r["strategy"], r["seed"],
                   r["epochs"], r["best_epoch"], *[r.get(s) for s in STATS],
                   *[per_class.get(c, {}).get(m) for c in classes for m in ("AP", "AP50")],
                   r["train_s"], r["train_images_per_s"], r["eval_images_per_s"], r["params"],
                   r["test"], " | ".join(r.get("warnings", []))]
            writer.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v
                             for v in row])


def write_markdown(results: list[dict], path: Path, plots: list[Path]) -> None:
    headers, rows = epoch_rows(results, path.parent)
    test = sorted({r["test"] for r in results})
    parts = [f"# Benchmark: {path.parent.name}", "",
             f"Scored on {', '.join(test)} (COCO mAP; train time is the sum of the training "
             "epochs, without validation).", "", markdown_table(*run_rows(results)), "",
             "## Per-class AP (mAP50-95)", "", markdown_table(*class_rows(results)), ""]
    grouped = group_rows(results)
    if grouped:
        parts += ["## Over the grid", "", markdown_table(*grouped), ""]
    if len(headers) > 1:
        parts += ["## Validation mAP50 after each epoch", "", markdown_table(headers, rows), ""]
    warned = [(r["name"], w) for r in results for w in r.get("warnings", [])]
    if warned:  # a run that learned nothing must not read as a result
        parts += ["## Warnings", "", *[f"- **{name}**: {warning}" for name, warning in warned], ""]
    parts += [f"![{plot.stem}]({plot.name})" for plot in plots]
    path.write_text("\n".join(parts) + "\n")


def _figure(width: float = 7, height: float = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _ap_history(run_dir: Path, metric: str = "AP") -> list[tuple[int, float]]:
    """(epoch, validation `metric`) from the run's metrics.csv, evaluated epochs only."""
    from detector.evaluation.report import read_metrics_csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    return [(int(row["epoch"]), row[metric]) for row in read_metrics_csv(path)
            if row.get(metric) is not None]


def epoch_rows(results: list[dict], out_dir: Path, metric: str = "AP50"):
    """(headers, rows): validation `metric` of every run after each evaluated epoch."""
    histories = {r["name"]: dict(_ap_history(out_dir / r["name"], metric)) for r in results}
    epochs = sorted({epoch for history in histories.values() for epoch in history})
    rows = [[name, *[history.get(epoch) for epoch in epochs]] for name, history in histories.items()]
    return ["run", *[f"epoch {epoch}" for epoch in epochs]], rows


def plot_ap_vs_epoch(results: list[dict], out_dir: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(11, 4)
    for index, (metric, label) in enumerate((("AP", "mAP50-95"), ("AP50", "mAP50"))):
        axes = figure.add_subplot(1, 2, index + 1)
        for r in results:
            points = _ap_history(out_dir / r["name"], metric)
            if points:
                axes.plot(*zip(*points), marker="o", label=r["name"])
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(f"validation {label}")
        axes.grid(alpha=0.3)
        if index == 1 and axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out_dir / "ap_vs_epoch.png")
    return out_dir / "ap_vs_epoch.png"


def plot_per_class(results: list[dict], out_dir: Path) -> Path:
    classes = _class_names(results)
    figure = _figure(max(6, 1.2 * len(classes) + 2), 4)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(results))
    for index, r in enumerate(results):
        values = [(r["per_class"].get(c, {}).get("AP") or 0.0) for c in classes]
        axes.bar([i + index * width for i in range(len(classes))], values, width, label=r["name"])
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes,
                    rotation=45 if len(classes) > 6 else 0, ha="right" if len(classes) > 6 else "center")
    axes.set_ylabel("test AP (mAP50-95)")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out_dir / "per_class_ap.png")
    return out_dir / "per_class_ap.png"


def write_report(results: list[dict], out_dir: str | Path) -> list[Path]:
    """results.csv, results.md and the two plots in `out_dir`; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_ap_vs_epoch(results, out_dir), plot_per_class(results, out_dir)]
    write_csv(results, out_dir / "results.csv")
    write_markdown(results, out_dir / "results.md", plots)
    return [out_dir / "results.csv", out_dir / "results.md", *plots]
