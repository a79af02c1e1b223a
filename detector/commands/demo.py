"""`detector demo [--out DIR] [--seed N]`: the toolkit end to end on its own synthetic data.

Steps, each a function below:
1. generate the synthetic RGB + LWIR dataset (detector.data.synthetic) into OUT/data,
2. read every split back through `read_dataset` and its dataset card,
3. print what `detector data check` prints for each split.
Exit 0 when the data is clean, 1 when the check found problems.
"""

from __future__ import annotations

from pathlib import Path

from detector.data.check import check_dataset, format_summary
from detector.data.readers import read_dataset
from detector.data.synthetic import make_synthetic_dataset

DEFAULT_OUT = Path("runs") / "demo"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="generate the synthetic RGB+LWIR dataset, read it "
                              "back and check it")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    p.set_defaults(func=run)


def generate(out: Path, seed: int) -> Path:
    """Step 1: the synthetic dataset in out/data; returns its card."""
    print(f"[1/3] generating the synthetic RGB + LWIR dataset in {out / 'data'}")
    return make_synthetic_dataset(out / "data", seed=seed, progress=True)


def read_splits(card: Path) -> dict:
    """Step 2: {split: DatasetRecords} for every split of the card."""
    from detector.data.cards import load_card

    splits = list(load_card(card).splits)
    print(f"[2/3] reading {', '.join(splits)} back with read_dataset({str(card)!r})")
    return {split: read_dataset(str(card), split=split) for split in splits}


def check(splits: dict) -> int:
    """Step 3: the `detector data check` summary of each split; returns the number of errors."""
    print("[3/3] checking the data (as `detector data check`)")
    errors = 0
    for split, records in splits.items():
        report = check_dataset(records)
        print(f"\n== {split} ==")
        print(format_summary(report.summary))
        for problem in report.problems:
            print(problem)
        errors += len(report.errors)
    return errors


def run(args) -> int:
    out = Path(args.out)
    card = generate(out, args.seed)
    errors = check(read_splits(card))
    print(f"\n{errors} problem(s). Dataset card: {card}")
    print(f"check it yourself: detector data check {card} --split train")
    return 1 if errors else 0
