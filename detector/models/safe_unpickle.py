"""Read foreign pickled checkpoints (classic YOLOv5, ultralytics) without running their code.

Those files pickle whole `nn.Module` trees whose classes live in the authors' packages
(`models.yolo.Model`, `ultralytics.nn.tasks.DetectionModel`...). Unpickling them normally imports
those packages and lets the file call any global it names (`os.system`, `builtins.eval`...).
Here a restricted unpickler, handed to `torch.load` as its `pickle_module`, resolves globals
itself:

- classes from an allow-listed set of module prefixes (plus `torch.nn.modules.`, the layers every
  pickled model holds) become `Record` subclasses: inert objects that keep the class's module
  and name and the pickled state (for an nn.Module: `_parameters`, `_buffers`, `_modules`, the
  plain attributes). A Record has no behaviour, so calling or building one runs nothing;
- tensors, storages and plain containers are rebuilt by torch's own functions (the same small
  set torch's `weights_only` mode trusts);
- every other global is refused with a CheckpointError naming the file and the global.

Only zip-format torch files (torch >= 1.6, what YOLOv5 and ultralytics write) are read; the
legacy format runs extra pickles outside the unpickler we control.

    record = load_pickled("yolov5n.pt", ("models.", "utils."))
    model = record["model"]               # Record of models.yolo.Model
    model.module, model.name              # 'models.yolo', 'Model'
    weights = model.state_dict()          # {'model.0.conv.weight': tensor, ...}
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import torch

from detector.errors import CheckpointError

# Layer classes every pickled model holds; they become Records like the model's own classes.
ALWAYS_RECORDED = ("torch.nn.modules.",)

# Functions and classes that only rebuild tensors or plain containers (a subset of what
# torch's weights_only unpickler allows). Looked up by "module.name".
TRUSTED_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.slice": slice,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    "torch.Size": torch.Size,
    "torch.device": torch.device,
    "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": torch._utils._rebuild_parameter_with_state,
    "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
    "torch.nn.parameter.Parameter": torch.nn.Parameter,
}

PYTHON2_MODULES = {"__builtin__": "builtins"}


class RefusedGlobal(CheckpointError):
    """The file names a global outside the allowed set; `.global_name` says which ('os.system')."""

    def __init__(self, message: str, global_name: str):
        super().__init__(message)
        self.global_name = global_name


class Record:
    """An inert stand-in for a pickled object of a foreign class.

    Class attributes `module` and `name` say which class it stood for; `state` is the dict the
    pickle restored (an nn.Module's `__dict__`); `args` the constructor arguments, if any.
    Read attributes with `record["key"]` or `record.get("key")`.
    """

    module = ""
    name = ""

    def __new__(cls, *args, **kwargs):
        record = object.__new__(cls)
        record.args = args
        record.kwargs = kwargs
        record.state = {}
        return record

    def __init__(self, *args, **kwargs):
        pass  # everything happened in __new__, which pickle's NEWOBJ calls alone

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slot dict)
            merged = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        if isinstance(state, dict):
            self.state.update(state)
        else:
            self.state["__state__"] = state

    def __getitem__(self, key: str):
        return self.state[key]

    def get(self, key: str, default=None):
        return self.state.get(key, default)

    @property
    def qualname(self) -> str:
        """'module.name' of the class this record stood for."""
        return f"{self.module}.{self.name}"

    def children(self) -> dict[str, "Record"]:
        """The sub-modules (`_modules`) in registration order."""
        return dict(self.state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this module tree, named like nn.Module.state_dict."""
        out: dict[str, torch.Tensor] = collections.OrderedDict()
        for name, value in (self.state.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = value.detach()
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, value in (self.state.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
        for name, child in self.children().items():
            if isinstance(child, Record):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out

    def __repr__(self) -> str:
        return f"<Record {self.qualname}>"


def _is_dtype(module: str, name: str) -> bool:
    return module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)


def _restricted_pickle_module(path: Path, allowed_prefixes: tuple[str, ...]):
    """A stand-in for the `pickle` module whose Unpickler resolves globals as described above."""
    record_prefixes = tuple(allowed_prefixes) + ALWAYS_RECORDED
    record_classes: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            # Protocol-2 pickles spell builtins the Python 2 way.
            module = PYTHON2_MODULES.get(module, module)
            qualname = f"{module}.{name}"
            if qualname in TRUSTED_GLOBALS:
                return TRUSTED_GLOBALS[qualname]
            if _is_dtype(module, name):
                return getattr(torch, name)
            if module.startswith(record_prefixes) and name.isidentifier():
                if qualname not in record_classes:
                    record_classes[qualname] = type(name, (Record,), {"module": module, "name": name})
                return record_classes[qualname]
            raise RefusedGlobal(
                f"{path}: refused to load: it names the global {qualname!r}, which is neither a "
                f"tensor rebuilder nor a class under {', '.join(record_prefixes)}",
                qualname,
            )

    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    namespace = type("restricted_pickle", (), {})()
    namespace.Unpickler = RestrictedUnpickler
    namespace.load = load
    namespace.__name__ = "restricted_pickle"
    return namespace


def load_pickled(path: str | Path, allowed_prefixes: tuple[str, ...]) -> object:
    """Unpickle the torch checkpoint at `path` on CPU; foreign classes become `Record`s.

    `allowed_prefixes`: module prefixes whose classes are recorded, e.g. ("models.", "utils.")
    for classic YOLOv5. Raises CheckpointError naming the file for a missing, truncated or
    non-zip file, and for any global outside the allowed set (nothing from the file has run).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a zip-format torch checkpoint (truncated, or written by torch < 1.6)"
        )
    pickle_module = _restricted_pickle_module(path, tuple(allowed_prefixes))
    try:
        return torch.load(path, map_location="cpu", pickle_module=pickle_module, weights_only=False)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, TypeError, AttributeError, IndexError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first_line})") from e


__all__ = ["Record", "RefusedGlobal", "load_pickled", "ALWAYS_RECORDED", "TRUSTED_GLOBALS"]
