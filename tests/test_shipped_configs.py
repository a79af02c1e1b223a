"""Every recipe in configs/ runs as shipped: train configs load, bench files plan every run, and
each (a bench file: its first run) takes its first optimisation step through the real recipe
path (recipe.prepare_run, run_folder.start_run, fit), so that a key renamed in the code, a
card, reader or family that changed, cannot silently break a shipped recipe.

Cheap by construction: the schedule is cut to one epoch of one batch at 64 px, on the first two
images of the config's own data read by its own reader (the shared data sets through their
cards). Where a config points at data no command here makes (a placeholder path, a folder a
benchmark script prepares), a stand-in with the same format, classes and modalities is written;
the synthetic data set is made by the command the config names. Weights that cannot be
downloaded on these machines are replaced by none, and the test says which."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from detector.bench.plan import is_bench_file, plan_bench
from detector.config import config_from_dict, config_to_dict, load_config
from test_train_cli import make_yolo_dataset

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
# registry weights with no file in DETECTOR_WEIGHTS and no way to download them here
UNAVAILABLE_WEIGHTS = {"fasterrcnn_mobilenet_v3_large_fpn_coco"}
SIZE = 64


def test_configs_are_shipped():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    if is_bench_file(yaml.safe_load(path.read_text())):
        plan = plan_bench([path])
        assert plan.runs and len({run.name for run in plan.runs}) == len(plan.runs)
    else:
        config = load_config(path)
        assert config.train.epochs or config.train.stages


def _stand_ins(tmp_path: Path) -> dict[str, str]:
    """Sources no command makes on a fresh machine -> a stand-in of the same kind."""
    from detector.data.synthetic import make_synthetic_dataset

    synthetic = make_synthetic_dataset(tmp_path / "synthetic", num_train=2, num_val=1,
                                       size=(SIZE, SIZE))
    custom = make_yolo_dataset(tmp_path / "custom", train=2, val=1, size=SIZE)
    # benchmarks/adapt_coco_to_hit_uav.py prepare writes COCO images relabelled with the
    # HIT-UAV classes as a YOLO data.yaml; the same layout, those classes
    thermal = make_yolo_dataset(tmp_path / "coco128_hit_uav", train=2, val=1, size=SIZE)
    card = yaml.safe_load(thermal.read_text())
    thermal.write_text(yaml.safe_dump({**card, "names": ["Person", "Car", "Bicycle",
                                                         "OtherVehicle"]}))
    # benchmarks/adapt_llvip_visible_to_ir.py writes one class, `person`, with train, test and
    # oracle splits: the same layout, that class alone (label 0 lines kept)
    llvip = make_yolo_dataset(tmp_path / "llvip_visible_to_ir", train=2, val=1, size=SIZE)
    for labels in (llvip.parent / "labels").rglob("*.txt"):
        labels.write_text("".join(line for line in labels.read_text().splitlines(keepends=True)
                                  if line.startswith("0 ")))
    card = yaml.safe_load(llvip.read_text())
    llvip.write_text(yaml.safe_dump({**card, "test": card["val"], "oracle": card["train"],
                                     "names": ["person"]}))
    return {"data/synthetic/synthetic.yaml": str(synthetic),
            "runs/demo/data/synthetic.yaml": str(synthetic),
            "path/to/your/dataset": str(custom),
            "runs/data/coco128_hit_uav/data.yaml": str(thermal),
            "runs/data/llvip_visible_to_ir/data.yaml": str(llvip)}


def _first_step_config(config, stand_ins: dict[str, str]):
    """The config cut to its first step: one epoch (the first stage's), batch 2, 64 px, no
    loader processes, on CPU; stand-in sources; unavailable weights dropped."""
    data = config_to_dict(config)
    for split in ("train", "val"):
        source = data["data"][split]
        if source is not None and source["source"] in stand_ins:
            source["source"] = stand_ins[source["source"]]
    model, train = data["model"], data["train"]
    if model["weights"] in UNAVAILABLE_WEIGHTS:
        model["weights"], model["class_map"] = None, None
    options = dict(model["options"])
    for key in ("min_size", "max_size", "image_size"):
        if key in options:
            options[key] = SIZE
    model["options"] = options
    model["image_size"] = SIZE if model["image_size"] is not None else None
    if train["stages"]:
        train["stages"] = [{**train["stages"][0], "epochs": 1}]
        train["epochs"] = None
    else:
        train["epochs"] = 1
    train.update(batch_size=2, workers=0, device="cpu", amp=False, eval_every=1)
    if train["adapt"] is not None:
        train["adapt"]["batch_size"] = 1
    return config_from_dict(data, origin="first step")


def _first_step(config, out_dir: Path) -> dict:
    from detector.recipe import prepare_run
    from detector.run_folder import start_run

    prepared = prepare_run(config, out_dir)
    for dataset, count in ((prepared.train_data, 2), (prepared.val_data, 1)):
        if dataset is not None:
            del dataset.records.images[count:]  # the first images, as the reader found them
    start_run(prepared.detector, prepared.train_data, prepared.val_data, config, out_dir)
    prepared.val_data = None  # read and decoded above; scoring one image would add nothing
    return prepared.fit(show_progress=False)


def _needs_shared(path: Path) -> bool:
    text = path.read_text()
    return any(name in text for name in ("bccd", "llvip", "hit_uav", "coco128", "yolov5n",
                                         "mobilenet_v2_imagenet"))


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_takes_its_first_step(path, tmp_path, monkeypatch, request):
    if _needs_shared(path):
        request.getfixturevalue("shared_data")
        request.getfixturevalue("shared_weights")
    monkeypatch.chdir(tmp_path)  # relative out_dirs and sources land here, not in the checkout
    stand_ins = _stand_ins(tmp_path / "stand_ins")
    if is_bench_file(yaml.safe_load(path.read_text())):
        config = plan_bench([path]).runs[0].config
    else:
        config = load_config(path)
    config = _first_step_config(config, stand_ins)
    result = _first_step(config, tmp_path / "run")
    assert result["epochs"] == 1
    losses = [row[key] for row in result["history"] for key in row if "loss" in key]
    assert losses and all(math.isfinite(float(v)) for v in losses)
    assert (tmp_path / "run" / "last.pt").is_file()
