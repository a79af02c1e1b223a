"""yamlfiles: the one YAML reader (UTF-8, the line of every key, broken YAML at its line)."""

from __future__ import annotations

import pytest

from detector.errors import ConfigError, DatasetError
from detector.yamlfiles import read_yaml, read_yaml_mapping


def test_every_key_and_list_item_has_its_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  arch: yolov8n\n\ntrain:\n  stages:\n    - epochs: 2\n    - epochs: 3\n")
    data, lines = read_yaml(path, "config", ConfigError)
    assert data["train"]["stages"][1] == {"epochs": 3}
    assert lines == {"model": 1, "model.arch": 2, "train": 4, "train.stages": 5,
                     "train.stages.0": 6, "train.stages.0.epochs": 6,
                     "train.stages.1": 7, "train.stages.1.epochs": 7}


def test_broken_yaml_names_the_file_and_line_in_the_callers_error(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("format: yolo\nroot: [unclosed\nsplits: {}\n")
    with pytest.raises(DatasetError, match=r"card.yaml:\d+: not valid YAML"):
        read_yaml(path, "dataset card")
    with pytest.raises(ConfigError, match=r"card.yaml:\d+: not valid YAML"):
        read_yaml(path, "config", ConfigError)


def test_empty_file_byte_order_mark_and_mapping_rule(tmp_path):
    empty, listed, marked = tmp_path / "empty.yaml", tmp_path / "list.yaml", tmp_path / "bom.yaml"
    empty.write_text("")
    listed.write_text("- a\n- b\n")
    marked.write_bytes("\ufeffnames: [person]\n".encode("utf-8"))
    assert read_yaml(empty) == (None, {})
    assert read_yaml_mapping(marked)[0] == {"names": ["person"]}
    with pytest.raises(DatasetError, match="list.yaml: expected a YAML mapping in the dataset card, got list"):
        read_yaml_mapping(listed, "dataset card")
    with pytest.raises(DatasetError, match="missing.yaml: cannot read the data.yaml"):
        read_yaml(tmp_path / "missing.yaml", "data.yaml")
