"""Where the toolkit writes: one guard for every file and folder a command writes.

    claim_outputs(out, ["annotations/train.json", "card.yaml"], flag="--out",
                  reads=[json_path, *image_paths], read_folders=[dataset_root])

Two rules, checked before the first byte is written, so that a refused command leaves nothing:

1. Never into its own input. No file written may be a file the command reads, and an output
   folder may be neither a folder the command reads from nor inside one (a data set's root, its
   image and label folders, the images given to `predict`). Not even with `--overwrite`.
2. Never over a file it did not write. Each output folder keeps a list of the files the toolkit
   wrote there (`.detector-outputs`, one relative path a line); an existing file that is not on
   the list is the user's, and is replaced only with `--overwrite`.

Claiming records the names in the list before they are written, so that the command may write
them again next time (a second `data convert` into the same folder, `bench` reusing its runs).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from detector.errors import ConfigError

MANIFEST = ".detector-outputs"


class OutputError(ConfigError):
    """An output path that would overwrite the user's input or a file the toolkit did not write."""


def _absolute(path: Path) -> Path:
    """The path with its folders resolved, the last component kept as is: a symlink the toolkit
    wrote (`data convert --link`) is a file of the output folder, not the image it points to."""
    path = Path(path).expanduser()
    return path.parent.resolve() / path.name


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def written_by_detector(folder: Path) -> set[str]:
    """Relative paths of the files the toolkit wrote in `folder` (from its manifest)."""
    manifest = Path(folder) / MANIFEST
    try:
        return {line for line in manifest.read_text(encoding="utf-8").splitlines() if line}
    except (OSError, UnicodeDecodeError):
        return set()


def _record(folder: Path, names: set[str]) -> None:
    manifest = folder / MANIFEST
    write_atomically(manifest, "".join(f"{name}\n" for name in sorted(names)))


def check_outputs(folder, names, *, flag: str, reads=(), read_folders=(),
                  overwrite: bool = False, hint: str = "") -> list[Path]:
    """Check rules 1 and 2 for the files `names` (paths relative to `folder`); returns the
    existing files that `overwrite` allows to be replaced. Raises OutputError naming `flag`
    (the CLI flag or config key that chose the folder) and the first conflicting file."""
    folder = Path(folder)
    shown = f"{flag} {folder}" if flag else str(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{shown}: is a file; expected a folder to write into")
    here = _absolute(folder)
    for read in read_folders:
        read = _absolute(Path(read))
        if _inside(here, read):
            raise OutputError(f"{shown}: {'is' if here == read else 'is inside'} {read}, which "
                              f"this command reads; choose an output folder outside it{hint}")
    inputs = {_absolute(Path(p)) for p in reads}
    ours = written_by_detector(folder)
    foreign, replaced = [], []
    for name in names:
        target = _absolute(folder / name)
        if target in inputs:
            raise OutputError(f"{shown}: would write {folder / name} over a file this command "
                              f"reads; choose an output outside the input{hint}")
        if (target.exists() or target.is_symlink()) and Path(name).as_posix() not in ours:
            (replaced if overwrite else foreign).append(folder / name)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise OutputError(f"{shown}: {foreign[0]}{more} already exists and was not written by "
                          f"detector; pass --overwrite to replace it{hint}")
    return replaced


def claim_outputs(folder, names, *, flag: str, reads=(), read_folders=(),
                  overwrite: bool = False, hint: str = "") -> Path:
    """`check_outputs`, then create `folder` and list `names` as the toolkit's own; returns the
    folder. Call it before writing any of `names`."""
    names = [Path(name).as_posix() for name in names]
    check_outputs(folder, names, flag=flag, reads=reads, read_folders=read_folders,
                  overwrite=overwrite, hint=hint)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listed = written_by_detector(folder)
    if not listed.issuperset(names):  # an unchanged list is not rewritten (two fsyncs saved)
        _record(folder, listed | set(names))
    return folder


def claim_file(path, *, flag: str, reads=(), read_folders=(), overwrite: bool = False) -> Path:
    """`claim_outputs` for one file (`--json FILE`, `convert --out FILE`); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; expected a file path")
    claim_outputs(path.parent, [path.name], flag=flag, reads=reads, read_folders=read_folders,
                  overwrite=overwrite)
    return path


def remove_outputs(folder, names) -> None:
    """Delete the files `names` of `folder` that the toolkit wrote (a run that could not start,
    a demo's previous run); the folder too when nothing else is left in it. Files not on the
    folder's list are never touched."""
    folder = Path(folder)
    ours = written_by_detector(folder)
    for name in names:
        name = Path(name).as_posix()
        if name in ours:
            (folder / name).unlink(missing_ok=True)
            ours.discard(name)
    if ours:
        _record(folder, ours)
        return
    (folder / MANIFEST).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # the user's files, or files the toolkit wrote without listing them
        pass


@contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) arriving inside the block is raised as KeyboardInterrupt when the block
    ends, not in the middle of it. A writer interrupted inside native code (torch's zip writer)
    turns the interrupt into an unrelated RuntimeError; deferred, the file is whole and the user
    still gets "interrupted". Outside the main thread (where signals cannot be handled) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    except BaseException as e:
        if caught:  # the block failed too: the user's Ctrl-C still wins, with the failure as cause
            raise KeyboardInterrupt from e
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def write_atomically(path: str | Path, content) -> None:
    """The toolkit's one way to write a file: `content` (str, bytes, or a function writing to
    a binary file object) goes to a temp file in the same folder, is fsynced and renamed over
    `path`, so a crash at any moment leaves the old file or the new one, never half of one; a
    Ctrl-C during the write is raised once the file is in place (`interrupts_deferred`)."""
    with interrupts_deferred():
        _write_atomically(path, content)


def _write_atomically(path: str | Path, content) -> None:
    import tempfile  # here: it imports shutil and random, a tenth of `detector eval` on json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; ours are ordinary files
        with os.fdopen(handle, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Interrupted or failed: the old file stays; the partial temp file goes.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    # The rename itself must reach the disk, or a power loss could bring the old name back.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
