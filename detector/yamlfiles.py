"""Reading the user's YAML files (configs, dataset cards, data.yaml, the weights registry).

One rule for all of them: the text is read by `textfiles.read_text` (UTF-8, a byte-order mark
allowed), broken YAML is reported at its line, and the line of every key is kept so that a
later check can name the line of the value it refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from detector.errors import DatasetError, DetectorError
from detector.textfiles import read_text


def key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Dotted key ('train.lr', 'runs.1.overrides') -> 1-based line, from a composed YAML node
    tree; list items are keyed by their index."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, dotted + "."))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            dotted = f"{prefix}{index}"
            lines[dotted] = item.start_mark.line + 1
            lines.update(key_lines(item, dotted + "."))
    return lines


def read_yaml(path: str | Path, what: str = "file",
              error: type[DetectorError] = DatasetError) -> tuple[Any, dict[str, int]]:
    """(data, {dotted key: line}) of the YAML file `path` (data None for an empty file).

    Raises `error` naming the file, and the line where the YAML breaks; `what` names the file's
    role in the message ("config", "dataset card")."""
    path = Path(path)
    text = read_text(path, what, error)
    try:
        lines = key_lines(yaml.compose(text))
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from e
    return data, lines


def read_yaml_mapping(path: str | Path, what: str = "file",
                      error: type[DetectorError] = DatasetError) -> tuple[dict, dict[str, int]]:
    """`read_yaml` for a file that must hold a mapping at its top."""
    data, lines = read_yaml(path, what, error)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a YAML mapping in the {what}, got {type(data).__name__}")
    return data, lines
