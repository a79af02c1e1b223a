"""The zero-shot row of a domain-adaptation bench: the bench's base model (pretrained weights,
class map, stem), untrained, scored on the bench's test split at the bench's image size.

    python benchmarks/adapt_zero_shot.py configs/bench_adapt_llvip_ir.yaml   # -> <out_dir>/zero_shot.json

Writes {"AP", "AP50", "per_class": {class: {AP, AP50, ...}}} to <bench out_dir>/zero_shot.json
(or --out) and prints it. The model does not depend on the seed, so one evaluation is the row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def zero_shot(bench: Path, out: Path | None = None) -> dict:
    from detector.bench.plan import plan_bench
    from detector.data.images import modality_channels
    from detector.evaluation.coco import evaluate
    from detector.recipe import build_model, read_split

    plan = plan_bench([bench])
    run = plan.runs[0]
    config = run.config
    modalities = list(run.test.modalities or config.data.modalities)
    test = read_split(run.test, modalities)
    channels = sum(modality_channels(m) for m in test.modalities)
    detector = build_model(config, list(test.class_names), list(test.modalities), channels)
    metrics = evaluate(detector.eval(), test, backend=config.train.eval_backend,
                       batch_size=config.train.batch_size, device="cpu")
    result = {"AP": float(metrics.stats["AP"]), "AP50": float(metrics.stats["AP50"]),
              "test_images": len(test),
              "per_class": {k: {m: float(v) for m, v in s.items()} for k, s in metrics.per_class.items()}}
    out = out or plan.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "zero_shot.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path, help="a bench file of configs/ (bench_adapt_*.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="folder for zero_shot.json")
    args = parser.parse_args()
    print(json.dumps(zero_shot(args.bench, args.out), indent=2))


if __name__ == "__main__":
    main()
