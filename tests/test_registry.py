"""models/registry.py: a dict and a decorator; names are unique and unknown names are refused."""

from __future__ import annotations

import pytest

from detector.errors import ConfigError
from detector.models import registry
from detector.models.registry import build_detector, get_model_entry, list_models, register_model


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the full registry (adapters loaded first), restored after the test."""
    list_models()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def test_registering_a_name_twice_raises(scratch_registry):
    name = list_models()[0]
    with pytest.raises(ValueError, match="already registered"):
        register_model(name, family="rcnn")(lambda class_names, **kw: None)


def test_a_new_name_registers_once(scratch_registry):
    built = register_model("tiny_test_model", family="test")(lambda class_names, **kw: class_names)
    assert "tiny_test_model" in list_models() and list_models("test") == ["tiny_test_model"]
    assert build_detector("tiny_test_model", ("a",)) == ["a"]
    assert callable(built)


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        get_model_entry("yolov99_huge")
    message = str(error.value)
    assert "yolov99_huge" in message
    assert all(name in message for name in list_models())


def test_every_family_is_registered():
    families = {get_model_entry(name).family for name in list_models()}
    assert {"rcnn", "yolo", "yolov5"} <= families


def test_an_unknown_name_names_its_key_and_the_nearest_model():
    with pytest.raises(ConfigError, match=r"^model\.arch: unknown model 'yolov8nn'; did you mean "
                                          r"'yolov8n'\? valid models: "):
        get_model_entry("yolov8nn")
