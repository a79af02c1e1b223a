"""Shared test set-up.

- `shared_data` tests need ../shared (DETECTOR_DATA / DETECTOR_WEIGHTS). Outside CI they skip
  with a reason when the variables are unset; under CI (CI=true) a missing variable fails them,
  so CI never skips them silently.
- `gpu` tests skip with a reason where CUDA is absent.
- `one_thread`: torch on one thread for the test (tiny tensors).
- DETECTOR_DATA / DETECTOR_WEIGHTS are made absolute once, for tests that chdir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


# The README's test command gives ../shared relative to the checkout; tests that chdir into a
# temp folder (relative out_dirs land there) must still find it, as the CLI would from here.
for _var in ("DETECTOR_DATA", "DETECTOR_WEIGHTS"):
    if os.environ.get(_var):
        os.environ[_var] = str(Path(os.environ[_var]).resolve())


def _shared(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared("DETECTOR_DATA")
    if path is None or not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"DETECTOR_DATA must point at ../shared/data under CI (got {path})")
        pytest.skip("DETECTOR_DATA is not set")
    return path


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    path = _shared("DETECTOR_WEIGHTS")
    if path is None or not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"DETECTOR_WEIGHTS must point at ../shared/weights under CI (got {path})")
        pytest.skip("DETECTOR_WEIGHTS is not set")
    return path


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is fastest. OpenMP threads spinning on a shared 2-core machine
    made a tiny model's train step 10 to 100 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
