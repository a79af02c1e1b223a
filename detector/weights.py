"""Pretrained weights by name: the registry (weights/registry.yaml), lookup, download, sha256.

    resolve("fasterrcnn_resnet50_fpn_coco") -> Path to fasterrcnn_resnet50_fpn_coco-258fb6c6.pth

`resolve(name_or_path)` returns an existing path as is. A registry name (or an official file
name) is looked for in each folder of DETECTOR_WEIGHTS (os.pathsep separated), then in the cache
(DETECTOR_CACHE, default ~/.cache/detector), then downloaded into the cache: to a temp file in
the cache folder with a progress bar, its sha256 checked against the registry (full digest or
published prefix), then renamed into place, so the cache never holds a partial or unverified
file. DETECTOR_OFFLINE=1 turns downloads off; the error then names the file, its URL and the
folder to put it in.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from detector.errors import WeightsError
from detector.yamlfiles import read_yaml

REGISTRY_FILE = Path(__file__).resolve().parent.parent / "weights" / "registry.yaml"
KINDS = ("detector", "backbone")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsEntry:
    """One registry entry (see weights/registry.yaml for the fields)."""

    name: str
    file: str
    url: str | None
    arch: str
    kind: str
    classes: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    default: bool = False


def load_registry(path: Path | None = None) -> dict[str, WeightsEntry]:
    """name -> WeightsEntry from a registry YAML file (a list of mappings; default
    REGISTRY_FILE, read at call time)."""
    path = REGISTRY_FILE if path is None else path
    items, _ = read_yaml(path, "weights registry", WeightsError)
    if not isinstance(items, list):
        raise WeightsError(f"{path}: expected a list of weights entries")
    fields = set(WeightsEntry.__dataclass_fields__)
    entries: dict[str, WeightsEntry] = {}
    for index, item in enumerate(items):
        where = f"{path}: entry {index + 1}"
        if not isinstance(item, dict) or set(item) - fields:
            raise WeightsError(f"{where}: expected the keys {', '.join(sorted(fields))}")
        try:
            entry = WeightsEntry(**item)
        except TypeError as e:
            raise WeightsError(f"{where}: {e}") from e
        if entry.name in entries:
            raise WeightsError(f"{where}: {entry.name!r} is listed twice")
        if entry.kind not in KINDS:
            raise WeightsError(f"{where}: kind must be one of {', '.join(KINDS)}")
        entries[entry.name] = entry
    return entries


def list_weights() -> list[WeightsEntry]:
    return list(load_registry().values())


def get_entry(name: str) -> WeightsEntry:
    """The entry called `name` (or whose file is called `name`); unknown -> WeightsError."""
    entries = load_registry()
    if name in entries:
        return entries[name]
    for entry in entries.values():
        if entry.file == name:
            return entry
    raise WeightsError(f"unknown weights {name!r}; valid names: {', '.join(entries)}")


def default_weights(arch: str) -> str | None:
    """Name of the detector weights `arch` loads when only the arch is given (None: none)."""
    return _default(arch, "detector")


def default_backbone_weights(arch: str) -> str | None:
    """Name of the ImageNet backbone weights for `arch` (None: none registered)."""
    return _default(arch, "backbone")


def _default(arch: str, kind: str) -> str | None:
    matches = [e for e in load_registry().values() if e.arch == arch and e.kind == kind]
    chosen = [e for e in matches if e.default] or matches
    return chosen[0].name if chosen else None


def weights_class_names(name_or_path: str | Path) -> list[str] | None:
    """Class names of registered detector weights (by name, or a path with an official file
    name); None for backbones and unregistered files."""
    from detector.data.coco_classes import COCO_CLASSES

    entries = load_registry()
    key = str(name_or_path)
    entry = entries.get(key) or next(
        (e for e in entries.values() if e.file == Path(key).name), None)
    if entry is None or entry.kind != "detector":
        return None
    if entry.classes == "coco":
        return list(COCO_CLASSES)
    raise WeightsError(f"{REGISTRY_FILE}: {entry.name}: unknown classes {entry.classes!r}")


# --- where files live ---------------------------------------------------------------------------


def weight_folders() -> list[Path]:
    """The folders of DETECTOR_WEIGHTS, in order."""
    value = os.environ.get("DETECTOR_WEIGHTS", "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part]


def cache_dir() -> Path:
    return Path(os.environ.get("DETECTOR_CACHE") or Path.home() / ".cache" / "detector").expanduser()


def is_offline() -> bool:
    return os.environ.get("DETECTOR_OFFLINE", "").lower() in ("1", "true", "yes")


def find_local(entry: WeightsEntry) -> Path | None:
    """The entry's file in a DETECTOR_WEIGHTS folder or the cache, or None."""
    for folder in [*weight_folders(), cache_dir()]:
        path = folder / entry.file
        if path.is_file():
            return path
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(name_or_path: str | Path, progress: bool = True) -> Path:
    """A local file for `name_or_path` (see the module docstring); WeightsError otherwise."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    try:
        entry = get_entry(str(name_or_path))
    except WeightsError as e:
        raise WeightsError(f"{name_or_path}: no such file, and {e}") from e
    local = find_local(entry)
    if local is not None:
        return local
    folder = cache_dir()
    where = f"put {entry.file} in {folder}" + (
        f" or in a DETECTOR_WEIGHTS folder ({os.pathsep.join(map(str, weight_folders()))})"
        if weight_folders() else " (or in a folder named by DETECTOR_WEIGHTS)")
    if entry.url is None:
        raise WeightsError(f"{entry.name}: {entry.file} is not downloadable; {where}")
    if is_offline():
        raise WeightsError(f"{entry.name}: {entry.file} is not here and downloads are off "
                           f"(DETECTOR_OFFLINE=1); download {entry.url} and {where}")
    if entry.sha256 is None and entry.sha256_prefix is None:
        print(f"warning: {entry.file}: the registry has no sha256 for it; "
              f"its download cannot be verified", file=sys.stderr)
    try:
        return download(entry.url, folder / entry.file, sha256=entry.sha256,
                        sha256_prefix=entry.sha256_prefix, progress=progress)
    except WeightsError as e:
        raise WeightsError(f"{entry.name}: {e}; you can download {entry.url} by hand and "
                           f"{where}") from e


def download(url: str, destination: Path, sha256: str | None = None,
             sha256_prefix: str | None = None, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Download `url` to `destination` atomically, checking its sha256 (full or prefix).

    Nothing is left at `destination` or beside it unless the whole file arrived and matched:
    the bytes go to a temp file in the same folder, which is renamed into place (atomic on one
    filesystem) or deleted.
    """
    from tqdm import tqdm

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                         suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=destination.name, disable=not progress, file=sys.stderr) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            # http.client returns a short body without complaint when the server closes early.
            if total is not None and received != total:
                raise WeightsError(f"{url}: transfer interrupted after {received} of {total} "
                                   f"bytes; nothing was kept")
            out.flush()
            os.fsync(out.fileno())
        hexdigest = digest.hexdigest()
        if sha256 is not None and hexdigest != sha256.lower():
            raise WeightsError(f"{url}: sha256 {hexdigest} does not match the expected {sha256}; "
                               f"the download was discarded")
        if sha256_prefix is not None and not hexdigest.startswith(sha256_prefix.lower()):
            raise WeightsError(f"{url}: sha256 {hexdigest} does not start with the expected "
                               f"{sha256_prefix}; the download was discarded")
        os.replace(temp, destination)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        temp.unlink(missing_ok=True)
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        else:
            reason = getattr(e, "reason", None) or e
        raise WeightsError(f"{url}: download failed ({reason}); nothing was kept") from e
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return destination


__all__ = ["WeightsEntry", "cache_dir", "default_backbone_weights", "default_weights", "download",
           "find_local", "get_entry", "is_offline", "list_weights", "load_registry", "resolve",
           "sha256_of", "weight_folders", "weights_class_names"]
