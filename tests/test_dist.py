"""Distributed training: 2 CPU processes (gloo) end where one process with the same global
batch ends."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from detector.checkpoint import load_checkpoint
from detector.train.dist import DistContext, init_distributed, make_sampler, wrap_model
from detector.train.engine import fit
from detector.train.freezing import Stage
from toy_detector import ToyDataset, ToyDetector, collate

# BatchNorm mixes the images of a batch, so a half batch per process would see other statistics
# than the whole batch: the parts with BatchNorm (stem, backbone.0) stay frozen here, as they do
# in most fine-tuning stages.
STAGES = [Stage(1, ("head", "neck")), Stage(1, ("head", "neck", "backbone.1"), {"backbone": 0.5})]
SETTINGS = dict(stages=STAGES, batch_size=4, lr=0.05, momentum=0.9, weight_decay=1e-3,
                warmup_epochs=0.5, clip_grad=None, collate_fn=collate, show_progress=False, seed=7)


def train_rank(rank: int, world_size: int, rendezvous: str, out_dir: str) -> None:
    # torchrun's environment, but a file rendezvous: a free TCP port picked in advance could be
    # taken by another program before the processes bind it.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                                         world_size=world_size)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    detector = ToyDetector(["a", "b"])
    try:
        fit(detector, ToyDataset(16), None, out_dir=out_dir, device="cpu", **SETTINGS)
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(train_rank, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "ddp")), nprocs=2,
             join=True)
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ddp["epoch"] == 2 and ddp["scheduler"]["step_count"] == 8  # 16 images / 4 per step x 2

    torch.manual_seed(0)
    single = ToyDetector(["a", "b"])
    initial = {k: v.clone() for k, v in single.state_dict().items()}
    fit(single, ToyDataset(16), None, out_dir=tmp_path / "single", device="cpu", **SETTINGS)
    moved = 0
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(value, initial[name])
    assert moved >= 6  # head, neck and backbone.1 weights and biases really trained


def test_world_of_one_without_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = init_distributed()
    assert context == DistContext() and context.is_main and not context.distributed
    model = ToyDetector(["a"])
    assert wrap_model(model, context, torch.device("cpu")) is model
    sampler = make_sampler(ToyDataset(6), context, shuffle=True, seed=1)
    sampler.set_epoch(2)
    assert sorted(sampler) == list(range(6))
    assert list(sampler) == torch.randperm(6, generator=torch.Generator().manual_seed(3)).tolist()


def test_sync_bn_converts_batchnorm_only_under_ddp_on_cuda(capsys):
    from torchvision.ops import FrozenBatchNorm2d

    from detector.errors import ConfigError
    from detector.train.dist import sync_batchnorm

    model = ToyDetector(["a"])
    model.neck = torch.nn.Sequential(model.neck, FrozenBatchNorm2d(8))  # pretrained-frozen BN
    before = {k: v.clone() for k, v in model.state_dict().items()}

    assert sync_batchnorm(model, DistContext(), torch.device("cpu"), enabled=True) is model
    assert "train.sync_bn: a no-op with one process" in capsys.readouterr().err
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    two = DistContext(rank=0, world_size=2)
    with pytest.raises(ConfigError, match="train.sync_bn: .*CUDA devices only"):
        sync_batchnorm(model, two, torch.device("cpu"), enabled=True)
    assert sync_batchnorm(model, two, torch.device("cpu"), enabled=False) is model

    # Converting needs no GPU (only running it does): every BatchNorm2d, no FrozenBatchNorm2d.
    converted = sync_batchnorm(model, two, torch.device("cuda"), enabled=True)
    kinds = [type(m) for m in converted.modules()]
    assert kinds.count(torch.nn.SyncBatchNorm) == 2 and torch.nn.BatchNorm2d not in kinds
    assert kinds.count(FrozenBatchNorm2d) == 1
    after = converted.state_dict()  # checkpoints keep their keys and values
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
