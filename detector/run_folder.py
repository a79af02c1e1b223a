"""A training run's folder: the files it holds, the checks made before it is claimed, and its
removal when the run could not start. Used by `detector train`, `detector bench` and the demo.

    start_run(detector, train_data, val_data, config, out_dir)   # raises before anything exists
    try:
        fit(...)
    except BaseException:
        discard_unstarted_run(out_dir)
        raise
"""

from __future__ import annotations

from pathlib import Path

# what `fit` writes into a run folder: claimed before the first step (detector/outputs.py)
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.csv", "training_curves.png",
             "pr_curves.png", "class_ap.png")


def run_inputs(config, train_data, val_data, config_file=None) -> tuple[list[Path], list[Path]]:
    """(files, folders) a run of `config` reads: its data sets (every image, label, card and
    root folder), the weights file and the config file. Its outputs must stay out of them."""
    from detector.data.inputs import input_paths

    reads, folders = [], set()
    for data, source in ((train_data, config.data.train), (val_data, config.data.val)):
        if data is not None and source is not None:
            files, dirs = input_paths(data.records, source.source)
            reads += files
            folders.update(dirs)
    reads += [Path(p) for p in (config.model.weights, config_file) if p and Path(p).is_file()]
    return reads, sorted(folders)


def start_run(detector, train_data, val_data, config, out_dir: Path, *, resume: bool = False,
              overwrite: bool = False, config_file=None, flag: str = "train.out_dir",
              extra_files=(), reads=(), read_folders=()) -> None:
    """Everything that can fail before the first step, then the run folder: the device, the
    data (every image decoded, sizes, boxes, classes) and the stages, all checked before
    `out_dir` is claimed (detector/outputs.py), so a run that cannot start leaves nothing.
    `extra_files` are claimed beside RUN_FILES (a bench's results.json); `reads` and
    `read_folders` add inputs beyond the config's own (a bench's test split); `flag` names what
    chose `out_dir` in errors."""
    from detector.data.preflight import check_training
    from detector.outputs import claim_outputs
    from detector.recipe import fit_arguments
    from detector.runtime import resolve_device

    train = config.train
    resolve_device(train.device, "train.device")
    stages = fit_arguments(config)["stages"]
    check_training(train_data, val_data, detector, epochs=train.epochs, stages=stages,
                   preset=train.preset, lr_mult=dict(train.lr_mult), layer_decay=train.layer_decay)
    if resume:
        return
    files, folders = run_inputs(config, train_data, val_data, config_file)
    claim_outputs(out_dir, (*RUN_FILES, *extra_files), flag=flag, reads=[*files, *reads],
                  read_folders=sorted({*folders, *map(Path, read_folders)}), overwrite=overwrite,
                  hint=f" (or choose another {flag})")


def discard_unstarted_run(out_dir: Path, extra_files=()) -> None:
    """A fresh run that failed before its first checkpoint: remove what it wrote (config.yaml,
    the folder it created), never anything else."""
    from detector.outputs import remove_outputs

    if not (Path(out_dir) / "last.pt").exists():
        remove_outputs(out_dir, (*RUN_FILES, *extra_files))
