"""Where a command runs: the device and the data-loading workers, checked once for every command.

`resolve_device("cuda", "--device")` turns what the user typed (a CLI flag or `train.device`) into
a `torch.device`, or refuses in one line naming the flag: a name torch does not know, CUDA asked
for where there is none (torch would fail later with "Found no NVIDIA driver"), a GPU index past
the last GPU, MPS where there is no MPS.
"""

from __future__ import annotations

import torch

from detector.errors import ConfigError


def resolve_device(value: str | torch.device | None, name: str = "--device",
                   local_rank: int = 0) -> torch.device:
    """`value` as a torch.device; None: cuda:<local_rank> when CUDA is present, else cpu.
    Raises ConfigError naming `name` (the flag or config key) when it cannot be used here."""
    if value is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{name}: expected cpu, cuda, cuda:N or mps, got {value!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{name}: {value} was asked for but CUDA is not available on this "
                              "machine (use cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{name}: {value} was asked for but this machine has {count} CUDA "
                              f"device(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{name}: mps was asked for but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{name}: expected cpu, cuda, cuda:N or mps, got {value!r}")
    return device


def check_workers(value: int | None, name: str = "--workers") -> None:
    """Data-loading processes: None (the default) or a count >= 0; ConfigError naming `name`."""
    if value is not None and value < 0:
        raise ConfigError(f"{name}: expected 0 or more data loading processes, got {value}")
