"""Errors raised at the toolkit's boundaries.

Every error a user can cause (bad file, bad config, bad checkpoint) is a `DetectorError`: the CLI
prints its message on one line and exits non-zero, with a traceback only under `--debug`.
Messages name the file (and line where there is one) and what was expected.
"""

import difflib


class DetectorError(Exception):
    """Base class: a problem with the user's input, reported in one line."""

    exit_code = 2


class DatasetError(DetectorError):
    """A dataset that cannot be read at all (missing folder, unknown format, unparsable file)."""


class ConfigError(DetectorError):
    """A config key or value that is not valid."""


class CheckpointError(DetectorError):
    """A checkpoint that is truncated, hostile, or not what was expected."""


class WeightsError(DetectorError):
    """Pretrained weights that cannot be resolved, downloaded or verified."""


class TrainingError(DetectorError):
    """Training cannot continue (non-finite loss, nothing to train)."""

    exit_code = 1


def suggestion(name, valid, what: str | None = "valid keys") -> str:
    """The hint after "unknown key 'x'": "did you mean 'y'?" for the nearest valid name, else
    "<what>: <every valid name>" (or "" when `what` is None: too many to list)."""
    valid = [str(v) for v in valid]
    near = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    if near:
        return f"did you mean '{near[0]}'?"
    return f"{what}: {', '.join(valid)}" if what else ""
