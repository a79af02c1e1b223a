"""Registry of domain-adaptation methods: a dict and a decorator.

    @register_method("mmd")
    class MMDAlignment(AlignmentMethod): ...

`build_method(name, options, ...)` looks the name up; an unknown name raises ConfigError with the
valid names, an unknown option with the method's valid options. Registering a name twice raises.
"""

from __future__ import annotations

import importlib

from detector.errors import ConfigError

# Modules whose import registers their methods. Listed, not discovered.
METHOD_MODULES = ("detector.adapt.adversarial", "detector.adapt.mmd", "detector.adapt.teacher")

_METHODS: dict[str, type] = {}


def register_method(name: str):
    """Class decorator registering an AlignmentMethod subclass under `name`."""

    def decorate(cls: type) -> type:
        if name in _METHODS:
            raise ValueError(f"adaptation method {name!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorate


def _load_methods() -> None:
    for module in METHOD_MODULES:
        importlib.import_module(module)


def method_names() -> list[str]:
    _load_methods()
    return sorted(_METHODS)


def method_class(name: str, where: str = "train.adapt.methods") -> type:
    """The registered class of `name`; ConfigError naming `where` and the valid names."""
    _load_methods()
    if name not in _METHODS:
        raise ConfigError(f"{where}: unknown adaptation method {name!r}; valid methods: "
                          f"{', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def check_options(name: str, options: dict, where: str) -> None:
    """ConfigError for an option the method `name` does not take (its OPTIONS are the valid
    ones, with their defaults)."""
    valid = method_class(name, where).OPTIONS
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{where}.options: unknown option(s) {', '.join(unknown)} of method "
                          f"{name!r}; valid options: {', '.join(valid) or 'none'}")


def adapt_problem(adapt) -> tuple[str, str] | None:
    """The first thing wrong with a train.adapt config (detector.config.AdaptConfig), as
    (dotted key, message), or None."""
    if not adapt.methods:
        return "train.adapt.methods", "train.adapt.methods is empty: give at least one method"
    if adapt.batch_size is not None and adapt.batch_size < 1:
        return ("train.adapt.batch_size",
                f"train.adapt.batch_size: expected at least 1, got {adapt.batch_size}")
    for index, method in enumerate(adapt.methods):
        where = f"train.adapt.methods.{index}"
        try:
            method_class(method.name, f"{where}.name")
            check_options(method.name, dict(method.options), where)
        except ConfigError as e:
            return where, str(e)
        for key in ("weight", "start_epoch", "ramp_epochs"):
            if getattr(method, key) < 0:
                return f"{where}.{key}", f"{where}.{key}: expected >= 0, got {getattr(method, key)}"
    return None
