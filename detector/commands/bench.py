"""`detector bench CONFIG... [--out DIR] [key=value ...]`: train and score several runs, one table.

CONFIG is one bench file (runs x grid over a base train config, see detector/bench/plan.py) or
several train configs. Every run is trained into OUT/<run>/ and scored on the bench's test split;
runs finished before (same config, same test split) are reused. OUT gets

- results.csv: one row per run: scores (the 12 COCO stats), per-class AP and AP50 (`AP/<class>`,
  `AP50/<class>`), train time (s), train and eval images/s, parameters;
- results.md: the same as Markdown tables (runs, per-class AP, mean and spread over the grid);
- ap_vs_epoch.png (validation mAP50-95 and mAP50 per epoch, every run) and per_class_ap.png
  (grouped bars); results.md also tabulates validation mAP50 after each epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.errors import ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark mAP across models, weights and freezing strategies",
        description="Train and evaluate each run of a bench (one bench file with runs and a "
                    "grid, or several train configs) on one dataset; write a CSV and Markdown "
                    "table and plots. Runs finished before are reused.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  detector bench configs/bench_synthetic.yaml train.seed=1 --out runs/bench_seed1\n"
               "  detector bench configs/fasterrcnn_bccd.yaml configs/other.yaml train.epochs=3",
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="a bench file, or train configs; KEY=VALUE items after them are "
                        "overrides applied to every run (put them before --out and --test)")
    p.add_argument("--out", metavar="DIR", help="bench folder (default: the bench file's "
                   "out_dir, else runs/bench/<first config's name>)")
    p.add_argument("--overwrite", action="store_true", help="replace files in the bench "
                   "folders that detector did not write (never the bench's own inputs)")
    p.add_argument("--test", metavar="SOURCE", help="score every run on this dataset instead")
    p.add_argument("--test-split", metavar="SPLIT", help="split of --test (e.g. test)")
    p.set_defaults(func=run)


def _split_arguments(items: list[str]) -> tuple[list[str], list[str]]:
    """(config paths, overrides): an item with '=' that is not an existing file is an override."""
    paths, overrides = [], []
    for item in items:
        (overrides if "=" in item and not Path(item).exists() else paths).append(item)
    return paths, overrides


def run(args) -> int:
    from detector.bench.plan import plan_bench
    from detector.bench.report import class_rows, group_rows, run_rows, write_report
    from detector.bench.run import run_bench
    from detector.config import SourceConfig
    from detector.tables import format_table

    paths, overrides = _split_arguments(args.configs)
    if not paths:
        raise ConfigError("detector bench: give a bench file or train configs (see configs/)")
    if args.test_split and not args.test:
        raise ConfigError("detector bench: --test-split needs --test SOURCE")
    test = SourceConfig(source=args.test, split=args.test_split) if args.test else None
    plan = plan_bench(paths, overrides, out_dir=args.out, test=test)
    print(f"bench: {len(plan.runs)} runs into {plan.out_dir}")
    results = run_bench(plan, overwrite=args.overwrite)
    written = write_report(results, plan.out_dir)
    print(format_table(*run_rows(results)))
    print()
    print(format_table(*class_rows(results)))
    grouped = group_rows(results)
    if grouped:
        print()
        print(format_table(*grouped))
    print("\nwrote " + ", ".join(str(path) for path in written))
    return 0
