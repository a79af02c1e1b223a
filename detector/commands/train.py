"""`detector train CONFIG [key=value ...] [--resume RUN_DIR]`: fine-tune a detector from a recipe.

The config (configs/*.yaml) is validated, then detector/recipe.py turns it into the data, the
model and `fit`'s arguments. `--resume RUN_DIR` reads RUN_DIR/config.yaml and continues from RUN_DIR/last.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.config import load_config
from detector.errors import ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a detector from a YAML recipe (configs/*.yaml)",
        description="Train a detector from a YAML config. Any key can be overridden on the "
                    "command line as key=value (e.g. train.epochs=3 model.weights=null).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  detector train configs/fasterrcnn_bccd.yaml train.epochs=3\n"
               "  detector train --resume runs/bccd",
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/); omit with --resume")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last.pt (uses RUN_DIR/config.yaml)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in train.out_dir even over files detector did not write")
    p.set_defaults(func=run)


def run(args) -> int:
    from detector.recipe import prepare_run
    from detector.run_folder import discard_unstarted_run, start_run
    from detector.tables import format_table
    from detector.train.dist import cleanup, is_main

    overrides = list(args.overrides)
    if args.resume:
        out_dir = Path(args.resume)
        if args.config:  # with --resume every positional is an override
            overrides.insert(0, args.config)
        if not (out_dir / "config.yaml").is_file():
            raise ConfigError(f"{out_dir}: not a run directory (expected {out_dir / 'config.yaml'})")
        config = load_config(out_dir / "config.yaml", overrides)
    else:
        if not args.config:
            raise ConfigError("detector train: give a CONFIG file (see configs/) or --resume RUN_DIR")
        config = load_config(args.config, overrides)
        out_dir = Path(config.train.out_dir)
        if (out_dir / "last.pt").exists() and not args.overwrite:
            raise ConfigError(
                f"{out_dir}: already holds a run; continue it with `detector train --resume "
                f"{out_dir}` or choose another train.out_dir"
            )
    prepared = prepare_run(config, out_dir, resume=bool(args.resume))
    start_run(prepared.detector, prepared.train_data, prepared.val_data, config, out_dir,
              resume=bool(args.resume), overwrite=args.overwrite, config_file=args.config)
    try:
        result = prepared.fit()
        main = is_main()
    except BaseException:
        if not args.resume:
            discard_unstarted_run(out_dir)
        raise
    finally:
        cleanup()
    if main:
        rows = [[str(out_dir), result["epochs"], result["best_epoch"], result["best_metric"]]]
        print(format_table(["run", "epochs", "best epoch", "best mAP50-95"], rows))
    return 0
