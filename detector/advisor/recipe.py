"""The advice as a training recipe: a config `detector train recipe.yaml` runs as it is.

The recipe is validated with detector.config before it is written (an invalid one is a bug
here, never a file left for the user to find out), starts with a comment block holding the
measurements that chose it, and is written atomically. A file that exists and was not written by
`detector advise` (no HEADER first line) is never overwritten.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.errors import ConfigError
from detector.outputs import write_atomically

HEADER = "# Written by `detector advise`"


def recipe_dict(advice, model_advice=None, out_dir: str | None = None) -> dict:
    """Plain config data (model, data, train) for `model_advice` (default: advice.chosen)."""
    chosen = model_advice or advice.chosen
    keys = {k: v for k, v in chosen.candidate.model_keys.items() if v is not None or k == "arch"}
    model = dict(keys)
    if model.get("arch") is None:
        model.pop("arch")
    model["class_map"] = "auto" if chosen.overlap else None
    if chosen.stem_init is not None:
        model["stem_init"] = chosen.stem_init
    model["image_size"] = chosen.image_size
    build_args = chosen.candidate.detector.build_args()
    if "image_size" in build_args:  # the family's own eval / train size
        model["options"] = {"image_size": chosen.image_size}
    elif "max_size" in build_args:  # rcnn: its internal resize, long side and short side
        short = int(round(chosen.image_size * chosen.size.native_aspect / 32) * 32) or 32
        model["options"] = {"min_size": short, "max_size": chosen.image_size}
    data = {"train": {"source": advice.source, "split": advice.split}}
    if advice.val_split is not None:
        data["val"] = {"source": advice.source, "split": advice.val_split}
    data["modalities"] = list(advice.channels.modalities)
    plan = chosen.plan
    train = {"batch_size": advice.batch_size, "optimizer": "sgd", "lr": 0.01,
             "warmup_epochs": plan.warmup_epochs}
    if plan.stages:
        train["stages"] = [{"epochs": s["epochs"], "train": list(s["train"]),
                            **({"lr_mult": dict(s["lr_mult"])} if s["lr_mult"] else {})}
                           for s in plan.stages]
    else:
        train["epochs"] = plan.epochs
        train["preset"] = plan.preset
        if plan.lr_mult:
            train["lr_mult"] = dict(plan.lr_mult)
    train["out_dir"] = out_dir or f"runs/advised_{Path(str(advice.source)).stem}"
    return {"model": model, "data": data, "train": train}


def recipe_text(advice, model_advice=None, out_dir: str | None = None) -> str:
    """The recipe YAML with the advice's summary as a comment header; validated first."""
    from detector.config import config_from_dict

    from detector.advisor.report import summary_lines

    data = recipe_dict(advice, model_advice, out_dir)
    config_from_dict(data, origin="the advised recipe")  # raises on a bug in this module
    lines = [HEADER + " (measurements below; edit freely)."]
    lines += [f"# {line}".rstrip() for line in summary_lines(advice, model_advice)]
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(lines) + "\n" + body


def write_recipe(advice, path: str | Path, model_advice=None, out_dir: str | None = None) -> Path:
    """Write the recipe to `path` atomically; refuses to replace a file advise did not write."""
    path = Path(path)
    if path.exists():
        try:
            first = path.read_text().split("\n", 1)[0]
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--out {path}: exists and cannot be read ({e}); not overwritten") from e
        if not first.startswith(HEADER):
            raise ConfigError(f"--out {path}: exists and was not written by `detector advise`; "
                              "not overwritten (choose another --out)")
    text = recipe_text(advice, model_advice, out_dir)
    write_atomically(path, text)
    return path


__all__ = ["HEADER", "recipe_dict", "recipe_text", "write_recipe"]
