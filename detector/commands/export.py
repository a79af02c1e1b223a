"""`detector export`: write a trained detector as a graph other runtimes run (ONNX).

    detector export --model M --format onnx --out m.onnx [--nms] [--opset 17]

M is anything `detector predict` takes (a run's best.pt, a YOLOv5 / ultralytics .pt, a
`detector convert` output). Every family and input channel count (1, 3, 4) exports; the YOLO
families with a dynamic batch, Faster R-CNN one image per run (see detector/models/<family>/export.py).
`--nms` puts NMS inside the YOLO graphs (Faster R-CNN's graph always holds it).
`detector predict --model m.onnx` runs the file with onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

from detector.errors import CheckpointError, ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a detector to ONNX (onnxruntime, TensorRT...)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="run checkpoint, YOLOv5/ultralytics .pt, "
                   "registered arch or weights name")
    p.add_argument("--format", default="onnx", help="export format (default onnx)")
    p.add_argument("--out", required=True, help="file to write (e.g. model.onnx)")
    p.add_argument("--nms", action="store_true",
                   help="decoding + NMS inside the graph (YOLO families; default: the head's "
                        "predictions before NMS)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=run)


def _check_target(out: Path, model: str) -> None:
    """Refuse to write over the model itself or over a file detector did not export."""
    from detector.export import is_exported
    from detector.export.onnx import read_metadata

    if not out.exists():
        return
    if Path(model).exists() and out.resolve() == Path(model).resolve():
        raise ConfigError(f"--out {out}: is the model file itself; choose another name")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name such as model.onnx")
    try:
        ours = is_exported(out) and read_metadata(out) is not None
    except CheckpointError:  # unreadable: not a file export wrote
        ours = False
    if not ours:
        raise ConfigError(f"--out {out}: exists and was not written by `detector export`; "
                          "choose another name or remove it")


def run(args) -> int:
    from detector.export import export_model
    from detector.export.formats import format_suffix
    from detector.models.loading import load_model

    suffix = format_suffix(args.format)  # an unknown format fails before the model loads
    out = Path(args.out)
    if out.suffix.lower() != suffix:
        raise ConfigError(f"--out {out}: a {args.format} file should end in {suffix}")
    _check_target(out, args.model)
    detector = load_model(args.model, device="cpu")
    plan = export_model(detector, args.format, out, nms=args.nms, opset=args.opset)
    graph = "detections (NMS inside)" if plan.graph_nms else "predictions before NMS"
    batch = "dynamic batch" if plan.dynamic_batch else "one image per run"
    print(f"{out}: {args.format}, {detector.arch}, {detector.num_classes} classes, "
          f"{detector.in_channels} input channels, outputs {graph}, {batch}")
    for note in plan.notes:
        print(f"note: {note}")
    return 0
