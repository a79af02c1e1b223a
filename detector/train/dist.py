"""Distributed data parallel helpers for runs under `torchrun` (or any launcher setting the env).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `init_distributed()` reads them and joins the
process group (nccl on CUDA, gloo on CPU). Without them everything is a world of one and each
helper is a no-op, so the engine has one code path. Only rank 0 logs and saves.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from detector.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group described by the environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Returns a world of one when WORLD_SIZE is unset or 1. Already initialised groups are reused.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        return DistContext(torch_dist.get_rank(), torch_dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch_dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank)


def is_main() -> bool:
    return not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_rank() == 0


def barrier() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of `value` over all processes (the value itself in a world of one)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return value
    value = value.detach().clone()
    torch_dist.all_reduce(value)
    return value / torch_dist.get_world_size()


def all_true(flag: bool, device: torch.device) -> bool:
    """True when `flag` is True on every process (so all of them stop together, none hangs)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return flag
    value = torch.tensor(float(flag), device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MIN)
    return bool(value.item())


def make_sampler(dataset: Dataset, context: DistContext, shuffle: bool, seed: int) -> DistributedSampler:
    """The sampler for every run, distributed or not: its order depends only on (seed, epoch)
    (call `set_epoch`), so a resumed run and an N-process run see the images a single process
    would, split between ranks."""
    return DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank,
                              shuffle=shuffle, seed=seed, drop_last=False)


def wrap_model(model: nn.Module, context: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when distributed, else `model` itself.

    Call again after a stage changes which parameters train: DDP fixes its set at wrap time.
    """
    if not context.distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def sync_batchnorm(model: nn.Module, context: DistContext, device: torch.device,
                   enabled: bool) -> nn.Module:
    """`train.sync_bn`: every BatchNorm of `model` becomes a SyncBatchNorm, whose training
    statistics are those of the global batch rather than of each process's share. Returns `model`
    (changed in place). Frozen parts' BatchNorm stays in eval mode (train/freezing.py), where a
    SyncBatchNorm is a plain BatchNorm; FrozenBatchNorm2d is not touched. The state dict keeps its
    keys, so checkpoints load into plain BatchNorm.

    With one process it is a no-op, and says so. torch runs SyncBatchNorm on GPUs only, so on
    another device it is refused before anything is written.
    """
    if not enabled:
        return model
    if not context.distributed:
        if context.is_main:
            print("note: train.sync_bn: a no-op with one process (BatchNorm already sees the "
                  "whole batch)", file=sys.stderr)
        return model
    if device.type != "cuda":
        raise ConfigError(f"train.sync_bn: torch's SyncBatchNorm runs on CUDA devices only, not "
                          f"{device.type}; set train.sync_bn=false for this run")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def cleanup() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
