"""Errors raised at the toolkit's boundaries.

Every error a user can cause (bad file, bad config, bad checkpoint) is a `DetectorError`: the CLI
prints its message on one line and exits non-zero, with a traceback only under `--debug`.
Messages name the file (and line where there is one) and what was expected.
"""


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
