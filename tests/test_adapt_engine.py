"""Domain adaptation inside `fit` on the toy detector: the losses reach the run, the domain
classifiers train and resume with it, frozen stages and wrong channels are refused, and two
torchrun processes end where one process ends."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from detector.adapt.adaptation import AdaptSpec, MethodSpec
from detector.checkpoint import load_checkpoint
from detector.errors import ConfigError
from detector.train.engine import fit
from detector.train.freezing import Stage
from toy_detector import ToyDataset, ToyDetector, box_error_metric, collate


class TargetImages(ToyDataset):
    """Target-domain stand-in: the toy images, brighter, optionally with another channel count."""

    def __init__(self, count=6, channels=3):
        super().__init__(count, seed=11)
        self.images = (self.images[:, :1].repeat(1, channels, 1, 1) * 0.5 + 0.5)


def spec(*methods, channels=3, batch_size=None):
    return AdaptSpec(target=lambda modalities: TargetImages(channels=channels),
                     methods=tuple(methods), batch_size=batch_size)


SETTINGS = dict(batch_size=2, lr=0.05, warmup_epochs=0.5, collate_fn=collate, show_progress=False,
                seed=3, evaluate_fn=box_error_metric)


def test_losses_are_logged_and_domain_classifiers_train_and_resume(tmp_path):
    torch.manual_seed(0)
    adapt = spec(MethodSpec("adversarial", weight=0.5, ramp_epochs=1.0), MethodSpec("mmd"),
                 MethodSpec("teacher", start_epoch=1.0, options={"threshold": 0.0}))
    fit(ToyDetector(["a", "b"]), ToyDataset(8), ToyDataset(4, seed=1), out_dir=tmp_path, epochs=1,
        adapt=adapt, ema=True, **SETTINGS)
    first = load_checkpoint(tmp_path / "last.pt")
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"adapt_adversarial", "adapt_mmd", "adapt_teacher"} <= set(header)
    row = first["history"][0]
    assert row["adapt_adversarial"] > 0 and row["adapt_mmd"] > 0
    assert row["adapt_teacher"] == 0  # not started before epoch 1
    state = first["adapt"]
    assert state["step"] == 4  # 8 images / batch 2
    classifier = {k: v for k, v in state["methods"].items() if k.startswith("0.classifiers")}
    assert classifier and all(torch.isfinite(v).all() for v in classifier.values())
    assert torch.any(state["methods"]["0.classifiers.0.layers.2.bias"] != 0)  # it trained

    fit(ToyDetector(["a", "b"]), ToyDataset(8), ToyDataset(4, seed=1), out_dir=tmp_path, epochs=2,
        adapt=adapt, ema=True, resume=True, **SETTINGS)
    second = load_checkpoint(tmp_path / "last.pt")
    assert second["adapt"]["step"] == 8 and second["history"][1]["adapt_teacher"] > 0
    assert int(second["adapt"]["methods"]["2.updates"]) == 4  # the teacher followed 4 steps
    moved = second["adapt"]["methods"]["0.classifiers.0.layers.2.bias"]
    assert not torch.equal(moved, state["methods"]["0.classifiers.0.layers.2.bias"])


def test_a_stage_set_that_freezes_everything_a_method_reaches_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^train\.adapt\.methods\.0 \(adversarial\): its loss "
                                          r"reaches stem, backbone\.0, backbone\.1, neck, but the "
                                          r"run trains only head; train more parts"):
        fit(ToyDetector(["a", "b"]), ToyDataset(4), None, out_dir=tmp_path / "a", epochs=1,
            preset="feature_extraction", adapt=spec(MethodSpec("adversarial")), **SETTINGS)
    # the teacher's loss goes through the head, so head-only training can learn from it
    fit(ToyDetector(["a", "b"]), ToyDataset(4), None, out_dir=tmp_path / "b", epochs=1,
        preset="feature_extraction", adapt=spec(MethodSpec("teacher")), **SETTINGS)


def test_target_images_with_other_channels_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^train\.adapt\.target: its images have 1 channels but "
                                          r"the model takes 3 \(rgb\)"):
        fit(ToyDetector(["a", "b"]), ToyDataset(4), None, out_dir=tmp_path, epochs=1,
            adapt=spec(MethodSpec("mmd"), channels=1), **SETTINGS)


# BatchNorm parts stay frozen (as in test_dist.py): a half batch per process sees other statistics.
DIST = dict(stages=[Stage(2, ("head", "neck", "backbone.1"))], batch_size=4, lr=0.05,
            warmup_epochs=0.5, clip_grad=None, collate_fn=collate, show_progress=False, seed=7)


def train_rank(rank: int, world_size: int, rendezvous: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                                         world_size=world_size)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        fit(ToyDetector(["a", "b"]), ToyDataset(8), None, out_dir=out_dir, device="cpu",
            adapt=spec(MethodSpec("adversarial"), batch_size=4), **DIST)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """The adversarial loss is a mean over images, so with DDP averaging the detector's and the
    domain classifiers' gradients, two processes with half batches end where one process ends
    (a classifier left out of DDP would see only its process's target images)."""
    mp.spawn(train_rank, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "ddp")), nprocs=2,
             join=True)
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    torch.manual_seed(0)
    single = ToyDetector(["a", "b"])
    fit(single, ToyDataset(8), None, out_dir=tmp_path / "one", device="cpu",
        adapt=spec(MethodSpec("adversarial"), batch_size=4), **DIST)
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    for name, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    for name, value in one["adapt"]["methods"].items():
        torch.testing.assert_close(ddp["adapt"]["methods"][name], value, rtol=1e-5, atol=1e-6,
                                   msg=name)
