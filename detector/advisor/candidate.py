"""A candidate pretrained model: the network to measure, its pretrained classes, and the model
keys a recipe needs to build it again.

`--model` takes what `detector train` takes: a registered arch (with its default detector weights,
else its default ImageNet backbone weights), a weights-registry name or file (yolov5n.pt), or a run
checkpoint. The class overlap is what `class_map: auto` keeps: dataset classes whose names match
a pretrained class (surgery.match_classes).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from detector.errors import CheckpointError, ConfigError, WeightsError


@dataclass
class Candidate:
    """- detector: the pretrained network, 3-channel as pretrained, its own head
    - pretrained_classes: the detector weights' classes; None for an ImageNet backbone
    - model_keys: {arch, weights, backbone_weights} for the recipe's model section"""

    spec: str
    detector: object
    pretrained_classes: list[str] | None
    model_keys: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "backbone" if self.pretrained_classes is None else "detector"


def _quiet(fn, *args, **kwargs):
    # Builders print the head-remap table on stderr; the advice prints its own summary.
    with contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def _is_run_checkpoint(path: Path) -> bool:
    from detector.checkpoint import load_checkpoint

    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def load_candidate(spec: str, class_names: list[str]) -> Candidate:
    """The Candidate for `spec` (see the module docstring); ConfigError / CheckpointError naming
    `spec` when it has nothing pretrained to measure."""
    from detector.models.loading import load_model
    from detector.models.registry import build_detector, list_models
    from detector.weights import default_backbone_weights, default_weights, get_entry

    spec = str(spec)
    if spec in list_models():
        weights = default_weights(spec)
        if weights is not None:
            detector = _quiet(load_model, spec)
            return Candidate(spec, detector, list(detector.class_names),
                             {"arch": spec, "weights": weights})
        backbone = default_backbone_weights(spec)
        if backbone is None:
            raise ConfigError(f"--model {spec}: has no pretrained weights (detector or backbone); "
                              "there is nothing to transfer or measure")
        detector = _quiet(build_detector, spec, list(class_names), backbone_weights=backbone)
        return Candidate(spec, detector.eval(), None, {"arch": spec, "backbone_weights": backbone})
    detector = _quiet(load_model, spec)
    path = Path(spec)
    if path.is_file() and _is_run_checkpoint(path):
        keys = {"arch": None, "weights": spec}  # the train command rebuilds it from the file
    else:
        try:
            arch = get_entry(path.name if path.is_file() else spec).arch
        except WeightsError:  # not registered: the importer's arch is the one
            arch = detector.arch
        keys = {"arch": arch if arch in list_models() else detector.arch, "weights": spec}
    return Candidate(spec, detector, list(detector.class_names), keys)


def class_overlap(class_names: list[str], candidate: Candidate) -> dict[str, str]:
    """{dataset class: pretrained class} that `class_map: auto` keeps."""
    from detector.models.surgery import match_classes

    if candidate.pretrained_classes is None:
        return {}
    mapping = match_classes(list(class_names), candidate.pretrained_classes)
    return {class_names[i]: candidate.pretrained_classes[j] for i, j in mapping.items()}


__all__ = ["Candidate", "class_overlap", "load_candidate"]
