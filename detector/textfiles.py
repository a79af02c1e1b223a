"""Reading the user's text files (labels, cards, configs, class lists) as UTF-8.

One rule for every text file the toolkit reads: UTF-8, a leading byte-order mark allowed (Windows
labelling tools write one). A file that is not UTF-8 is reported with the line of the first bad
byte, never as a bare UnicodeDecodeError.
"""

from __future__ import annotations

from pathlib import Path

from detector.errors import DatasetError, DetectorError


def read_text(path, what: str = "file", error: type[DetectorError] = DatasetError) -> str:
    """The text of `path`. Raises `error` naming the file (and line) when it cannot be read or is
    not UTF-8; the raised error carries `.line` (1-based, None when the file cannot be read)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        failure = error(f"{path}: cannot read the {what}: {e.strerror or e}")
        failure.line = None
        raise failure from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        failure = error(f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{raw[e.start]:02x} "
                        "there); save it as UTF-8")
        failure.line = line
        raise failure from e
