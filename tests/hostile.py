"""What the hostile-input tests check after each command (issue 16): the exit code, one error
line on stderr naming the file, key or flag, no traceback, and the user's files as they were."""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(*roots: Path) -> dict:
    """{path: sha256} of every file under `roots` (symlinks by target name): any file written,
    changed or removed shows."""
    found = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_symlink():
                found[path] = f"-> {path.readlink()}"
            elif path.is_file():
                found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def error_lines(err: str) -> list[str]:
    """stderr without progress bars and warnings."""
    return [line for line in err.splitlines()
            if line.strip() and "%|" not in line and not line.startswith("warning: ")]


def one_line_error(capsys, *names) -> str:
    """The one error line on stderr (progress bars and warnings aside), naming every one of
    `names`."""
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]
