"""Exported detectors: export plans, NMS in a graph, ONNX export and the onnxruntime runner.

    from detector.export import export_model, load_exported
    export_model(detector, "onnx", "m.onnx", nms=True)
    onnx_detector = load_exported("m.onnx")       # the Detector contract, eval mode

Each adapter says what its graph holds through `Detector.export_plan` (detector/models/
<family>/export.py); everything here is written once for every family.
"""

from detector.export.formats import export_model, is_exported, list_formats, load_exported

__all__ = ["export_model", "is_exported", "list_formats", "load_exported"]
