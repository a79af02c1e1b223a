"""`detector train CONFIG [key=value ...] [--resume RUN_DIR] [--nproc N]`: fine-tune a detector
from a recipe.

The config (configs/*.yaml) is validated, then detector/recipe.py turns it into the data, the
model and `fit`'s arguments. `--resume RUN_DIR` reads RUN_DIR/config.yaml and continues from
RUN_DIR/last.pt. Under torchrun (`torchrun --nproc_per_node N -m detector train ...`) every
process runs this command and train/dist.py joins them; `--nproc N` starts that torchrun itself
on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detector.config import Config, load_config
from detector.errors import ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a detector from a YAML recipe (configs/*.yaml)",
        description="Train a detector from a YAML config. Any key can be overridden on the "
                    "command line as key=value (e.g. train.epochs=3 model.weights=null).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  detector train configs/fasterrcnn_bccd.yaml train.epochs=3\n"
               "  detector train --resume runs/bccd\n"
               "  detector train configs/fasterrcnn_bccd.yaml --nproc 2   # 2 processes (GPUs)",
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/); omit with --resume")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last.pt (uses RUN_DIR/config.yaml)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in train.out_dir even over files detector did not write")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine (one per GPU, or gloo on CPU): "
                        "runs `torchrun --standalone --nproc_per_node N -m detector train ...`")
    p.set_defaults(func=run)


def launch_torchrun(args, config: Config) -> int:
    """`--nproc N`: this command again under torchrun, N processes on this machine (a free
    port found by torchrun's standalone rendezvous); returns the processes' exit status. A
    process's error is its own one line; torchrun's report on the failure is not repeated."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args as torchrun_arguments
    from torch.distributed.run import run as torchrun

    from detector.runtime import resolve_device

    if args.nproc < 1:
        raise ConfigError(f"--nproc: expected a number of processes >= 1, got {args.nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc: this process already runs under torchrun; drop --nproc")
    device = resolve_device(config.train.device, "train.device")
    if config.train.sync_bn and device.type != "cuda":  # what each process would refuse
        raise ConfigError(f"train.sync_bn: torch's SyncBatchNorm runs on CUDA devices only, not "
                          f"{device.type}; set train.sync_bn=false for this run")
    command = ["--standalone", f"--nproc_per_node={args.nproc}", "-m", "detector"]
    command += ["--debug"] if args.debug else []
    command += ["train", *([args.config] if args.config else []), *args.overrides]
    command += ["--resume", args.resume] if args.resume else []
    command += ["--overwrite"] if args.overwrite else []
    if not args.debug:
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(torchrun_arguments(command))
    except ChildFailedError as e:
        if args.debug:
            raise
        rank, failure = e.get_first_failure()
        print(f"error: --nproc {args.nproc}: process {rank} failed with exit status "
              f"{failure.exitcode} (its message is above)", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


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
    if args.nproc is not None and args.nproc != 1:  # the recipe was checked above, once, in this process
        return launch_torchrun(args, config)
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
