"""Hostile corpus, part 1 (issue 16): every command that writes, pointed at its own input, at a
file of the user's or at a folder of the user's; every command that loads a checkpoint, given a
zero-byte, truncated, random or hostile one. Each must exit non-zero with one line naming the
flag, key or file, and leave every file as it was (nothing written either).

One world (a tiny YOLO data set, a run checkpoint, a folder of the user's) serves every case;
no case trains."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from PIL import Image

from detector.cli import main
from hostile import digest, one_line_error
from test_train_cli import TINY, make_yolo_dataset

MARKER = "/tmp/detector-corpus-pickle-ran"


class _Hostile:
    def __reduce__(self):  # runs on a plain pickle.load: a checkpoint must never do this
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from detector.checkpoint import describe_detector, save_checkpoint
    from detector.models.registry import build_detector

    root = tmp_path_factory.mktemp("corpus")
    data = make_yolo_dataset(root / "ds", train=2, val=1, size=64)
    (root / "img").mkdir()
    Image.new("RGB", (48, 40), (90, 20, 20)).save(root / "img" / "a.png")
    detector = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", ["red", "blue"],
                              weights=None, min_size=64, max_size=64)
    model = root / "model.pt"
    save_checkpoint(model, {**describe_detector(detector), "model": detector.state_dict(),
                            "epoch": 0})
    user = root / "user"
    for name, text in (("notes.txt", "my notes\n"), ("model.onnx", "not an export\n"),
                       ("recipe.yaml", "mine: 1\n"), ("metrics.csv", "epoch\n1\n"),
                       ("synthetic.yaml", "mine: 2\n"), ("annotations/train.json", "{}\n"),
                       ("data/synthetic.yaml", "mine: 3\n")):
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    shutil.copy(root / "img" / "a.png", user / "a.png")  # what predict would name its output
    (user / "config.yaml").write_text(TINY.read_text())

    bad = root / "bad"
    bad.mkdir()
    full = model.read_bytes()
    (bad / "zero.pt").write_bytes(b"")
    (bad / "truncated.pt").write_bytes(full[: len(full) // 3])
    (bad / "random.pt").write_bytes(bytes(range(256)) * 40)
    (bad / "hostile.pt").write_bytes(pickle.dumps(_Hostile()))
    run = root / "interrupted"  # a run folder whose last.pt is broken
    run.mkdir()
    config = yaml.safe_load(TINY.read_text())
    config["data"] = {"train": {"source": str(data), "split": "train"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return {"root": root, "data": data, "ds": root / "ds", "img": root / "img", "model": model,
            "user": user, "bad": bad, "run": run}


def _args(w, template: list[str]) -> list[str]:
    return [part.format(**{k: str(v) for k, v in w.items()}) for part in template]


TRAIN = ["train", str(TINY), "data.train.source={data}", "data.val.source={data}"]

# (id, command, names the error line must hold)
OUTPUT_CASES = [
    ("data-convert-into-data-link", ["data", "convert", "{data}", "--split", "train", "--to",
                                     "coco", "--out", "{ds}", "--link"], ["--out"]),
    ("data-convert-into-images", ["data", "convert", "{data}", "--split", "train", "--to", "yolo",
                                  "--out", "{ds}/images/train"], ["--out"]),
    ("data-convert-over-user-json", ["data", "convert", "{data}", "--split", "train", "--to",
                                     "coco", "--out", "{user}"], ["train.json", "--overwrite"]),
    ("data-check-json-over-card", ["data", "check", "{data}", "--json", "{data}"], ["--json"]),
    ("data-check-json-over-user", ["data", "check", "{data}", "--json", "{user}/notes.txt"],
     ["notes.txt"]),
    ("synthetic-over-user-card", ["data", "synthetic", "{user}", "--train", "1", "--val", "1"],
     ["synthetic.yaml"]),
    ("synthetic-into-a-file", ["data", "synthetic", "{user}/notes.txt"], ["is a file"]),
    ("convert-over-its-model", ["convert", "--model", "{model}", "--to", "ir", "--out",
                                "{model}"], ["--out"]),
    ("convert-over-user-file", ["convert", "--model", "{model}", "--to", "ir", "--out",
                                "{user}/notes.txt"], ["notes.txt"]),
    ("export-over-user-onnx", ["export", "--model", "{model}", "--out", "{user}/model.onnx"],
     ["--out", "model.onnx"]),
    ("export-into-a-folder", ["export", "--model", "{model}", "--out", "{user}"], ["--out"]),
    ("predict-into-source", ["predict", "--model", "{model}", "--source", "{img}", "--out",
                             "{img}", "--device", "cpu"], ["--out"]),
    ("predict-over-user-image", ["predict", "--model", "{model}", "--source", "{img}", "--out",
                                 "{user}", "--device", "cpu"], ["a.png"]),
    ("eval-json-over-card", ["eval", "--model", "{model}", "--data", "{data}", "--split", "val",
                             "--json", "{data}", "--device", "cpu"], ["--json"]),
    ("eval-results-over-label", ["eval", "--model", "{model}", "--data", "{data}", "--split",
                                 "val", "--results", "{ds}/labels/val/val0.txt", "--device",
                                 "cpu"], ["--results"]),
    ("eval-plots-into-images", ["eval", "--model", "{model}", "--data", "{data}", "--split",
                                "val", "--plots", "{ds}/images/val", "--device", "cpu"],
     ["--plots"]),
    ("eval-json-over-user", ["eval", "--model", "{model}", "--data", "{data}", "--split", "val",
                             "--json", "{user}/notes.txt", "--device", "cpu"], ["notes.txt"]),
    ("train-into-data", [*TRAIN, "train.out_dir={ds}"], ["train.out_dir"]),
    ("train-over-user-files", [*TRAIN, "train.out_dir={user}"], ["train.out_dir", "config.yaml"]),
    ("train-over-its-config", ["train", "{user}/config.yaml", "data.train.source={data}",
                               "data.val.source={data}", "train.out_dir={user}", "--overwrite"],
     ["config.yaml", "reads"]),
    ("advise-over-card", ["advise", "{data}", "--model", "{model}", "--out", "{data}"],
     ["--out"]),
    ("advise-over-user-recipe", ["advise", "{data}", "--model", "{model}", "--out",
                                 "{user}/recipe.yaml"], ["recipe.yaml"]),
    ("advise-plot-over-user-file", ["advise", "{data}", "--model", "{model}", "--out",
                                    "{root}/r.yaml", "--plot", "{user}/notes.txt"], ["--plot"]),
    ("demo-over-user-data", ["demo", "--out", "{user}", "--epochs", "0"], ["synthetic.yaml"]),
    ("demo-negative-epochs", ["demo", "--out", "{root}/demo", "--epochs", "-1"], ["--epochs"]),
]


@pytest.mark.parametrize("case, template, names", OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_outputs_never_replace_inputs_or_user_files(world, capsys, case, template, names):
    before = digest(world["root"])
    assert main(_args(world, template)) == 2
    one_line_error(capsys, *names)
    assert digest(world["root"]) == before  # nothing changed, nothing written


LOADERS = {  # commands that load a checkpoint: {bad} is the file under test
    "predict": ["predict", "--model", "{bad}", "--source", "{img}", "--out", "{root}/p",
                "--device", "cpu"],
    "eval": ["eval", "--model", "{bad}", "--data", "{data}", "--split", "val", "--device", "cpu"],
    "export": ["export", "--model", "{bad}", "--out", "{root}/m.onnx"],
    "convert": ["convert", "--model", "{bad}", "--to", "ir", "--out", "{root}/c.pt"],
    "advise": ["advise", "{data}", "--model", "{bad}", "--out", "{root}/r.yaml", "--images", "1"],
    "train-weights": [*TRAIN, "model.arch=null", "model.weights={bad}",
                      "train.out_dir={root}/t"],
    "train-resume": ["train", "--resume", "{run}"],
}


@pytest.mark.parametrize("kind", ["zero", "truncated", "random", "hostile"])
@pytest.mark.parametrize("command", list(LOADERS))
def test_broken_checkpoints_are_one_line(world, capsys, command, kind):
    bad = world["bad"] / f"{kind}.pt"
    shutil.copy(bad, world["run"] / "last.pt")
    before = digest(world["root"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(_args({**world, "bad": bad}, LOADERS[command])) == 2
    one_line_error(capsys, world["run"] / "last.pt" if command == "train-resume" else bad)
    # torch's own warnings about the file would be more lines on stderr outside pytest
    assert not [w for w in caught if "weights_only" in w.filename], caught
    assert digest(world["root"]) == before
    assert not Path(MARKER).exists()  # the hostile pickle never ran
