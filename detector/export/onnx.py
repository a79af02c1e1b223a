"""ONNX export and the onnxruntime runner.

    export_onnx(detector, "m.onnx", nms=False)    # any family, any input channel count
    detector = load_onnx("m.onnx")                # Detector contract, onnxruntime on CPU

The graph is the adapter's export plan (detector/export/plan.py) traced with torch.onnx's
TorchScript-based exporter (`dynamo=False`: torchvision's detection models and the ultralytics
heads export through it, with dynamic batch, height and width). Input "images" [B,C,H,W] float;
outputs as the plan names them (docs in detector/models/<family>/export.py). The file's metadata_props
hold {"detector": json of describe_detector() + graph_nms}, which `load_onnx` reads back.

The file is written to a temporary name in the target folder and renamed over the target when
complete, so an interrupted export never leaves half a file under the name asked for.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from detector.checkpoint import describe_detector
from detector.errors import CheckpointError
from detector.export.exported import METADATA_KEY, METADATA_VERSION, ExportedDetector, plan_from_metadata
from detector.export.formats import register_format, register_loader

OPSET = 17


def read_metadata(path: str | Path) -> dict | None:
    """The detector metadata of an ONNX file, or None when it has none (not exported here).
    CheckpointError when the file is not a readable ONNX model (truncated, another format)."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from e
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            try:
                meta = json.loads(entry.value)
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{path}: its '{METADATA_KEY}' metadata is not json ({e})") from e
            if not isinstance(meta, dict):
                raise CheckpointError(f"{path}: its '{METADATA_KEY}' metadata is not a mapping")
            return meta
    return None


@register_format("onnx", suffix=".onnx")
def export_onnx(detector, path: str | Path, nms: bool = False, opset: int = OPSET):
    """Write `detector` (eval mode) as an ONNX file at `path`; returns its ExportPlan."""
    import onnx

    path = Path(path)
    plan = detector.eval().export_plan(nms=nms)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            # The tracer warns about every Python int it records; the dynamic axes are checked by
            # running the exported file at other batch sizes and shapes (tests/test_export.py).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="torch")
            torch.onnx.export(plan.network, (plan.example,), str(tmp), dynamo=False,
                              opset_version=opset, input_names=["images"],
                              output_names=list(plan.output_names), dynamic_axes=plan.axes,
                              do_constant_folding=True)
        model = onnx.load(str(tmp))
        meta = {**describe_detector(detector), "metadata_version": METADATA_VERSION,
                "graph_nms": plan.graph_nms, "dynamic_batch": plan.dynamic_batch,
                "outputs": list(plan.output_names)}
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        model.producer_name = "detector"
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return plan


def _session_runner(session):
    """An onnxruntime session as a callable: [B,C,H,W] tensor -> list of tensors."""
    input_name = session.get_inputs()[0].name

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        outputs = session.run(None, {input_name: batch.contiguous().numpy()})
        return [torch.from_numpy(output) for output in outputs]

    return run


@register_loader(".onnx")
def load_onnx(path: str | Path, threads: int | None = None) -> ExportedDetector:
    """An ONNX file written by `export_onnx` as a Detector (eval mode, onnxruntime on CPU).

    CheckpointError naming the file when it is not such a file."""
    import onnxruntime

    path = Path(path)
    meta = read_metadata(path)
    if meta is None:
        raise CheckpointError(f"{path}: an ONNX model without '{METADATA_KEY}' metadata; only "
                              "files written by `detector export` can be run")
    source, plan = plan_from_metadata(meta, path)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
    except (RuntimeError, ValueError) as e:  # onnxruntime's errors derive from RuntimeError
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({e})") from e
    return ExportedDetector(source, plan, _session_runner(session), path)
