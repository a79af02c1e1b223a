"""Inference speed on the CPU: PyTorch vs onnxruntime (`detector export`), same model, same images.

    DETECTOR_DATA=../shared/data DETECTOR_WEIGHTS=../shared/weights \\
        .venv/bin/python benchmarks/onnx_speed.py [--images 8] [--repeat 3] [--threads 2]

Two models at 640 px: classic YOLOv5n from yolov5n.pt (COCO), and Faster R-CNN MobileNetV2
(ImageNet backbone mobilenet_v2_imagenet.pth; its detection layers are freshly drawn from seed 0,
which changes how many boxes reach NMS but not the network's cost; min_size = max_size = 640).
Images: the first `--images` of coco128's val2017, decoded once beforehand (decoding is not
timed). Each call gets one image, as a camera or a request would: images/s = images / wall s of
the whole call (letterbox or resize, network, decoding, NMS, boxes back to the image). The ONNX
files are what `detector export --format onnx` writes (YOLO without --nms: NMS runs after
onnxruntime, as in PyTorch; BatchNorm folded into the convolutions, on the PyTorch side too, as
`detector eval` runs it). Both sides get `--threads` CPU threads, run `--repeat` times,
alternated, after one untimed warm-up; the fastest run counts. The script also checks that both
found the same number of boxes (score >= 0.25) on every image.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from detector.data.images import load_image, to_float
from detector.export import export_model
from detector.export.onnx import load_onnx
from detector.models.loading import load_model
from detector.models.registry import build_detector
from detector.tables import markdown_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8, help="coco128 val2017 images")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for both runtimes (more than the free cores: both slow down)")
    parser.add_argument("--size", type=int, default=640, help="network input size (long side)")
    return parser.parse_args(argv)


def read_images(count: int) -> list[torch.Tensor]:
    folder = Path(os.environ["DETECTOR_DATA"]) / "coco128" / "images" / "val2017"
    paths = sorted(folder.iterdir())[:count]
    return [torch.from_numpy(to_float(load_image(path, 3)).transpose(2, 0, 1).copy())
            for path in paths]


def build_models(size: int) -> dict:
    weights = Path(os.environ["DETECTOR_WEIGHTS"])
    yolo = load_model(weights / "yolov5n.pt")
    yolo.image_size = size
    torch.manual_seed(0)
    rcnn = build_detector("fasterrcnn_mobilenet_v2", ["a", "b"],
                          backbone_weights=str(weights / "mobilenet_v2_imagenet.pth"),
                          min_size=size, max_size=size)
    return {"yolov5n (yolov5n.pt)": yolo.eval(), "Faster R-CNN MobileNetV2": rcnn.eval()}


def time_calls(model, images) -> tuple[float, list[int]]:
    """Seconds for one call per image, and the boxes scoring >= 0.25 per image."""
    found = []
    start = time.perf_counter()
    with torch.inference_mode():
        for image in images:
            found.append(model([image])[0])
    seconds = time.perf_counter() - start
    return seconds, [int((f["scores"] >= 0.25).sum()) for f in found]


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    images = read_images(args.images)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in build_models(args.size).items():
            path = Path(scratch) / f"{len(rows)}.onnx"
            export_model(model, "onnx", path)
            # PyTorch at its best, as `detector eval` runs it: BatchNorm folded into the convs
            fused = model.for_inference() if hasattr(model, "for_inference") else model
            runtimes = {"PyTorch": fused, "onnxruntime": load_onnx(path, threads=args.threads)}
            best = {}
            for runtime in runtimes.values():  # warm-up: lazy inits, caches
                time_calls(runtime, images[:1])
            for _ in range(args.repeat):
                for label, runtime in runtimes.items():
                    seconds, counts = time_calls(runtime, images)
                    best[label] = min(best.get(label, seconds), seconds)
                    best[f"{label} boxes"] = counts
            if best["PyTorch boxes"] != best["onnxruntime boxes"]:
                raise SystemExit(f"{name}: the runtimes found different boxes: "
                                 f"{best['PyTorch boxes']} vs {best['onnxruntime boxes']}")
            torch_speed = len(images) / best["PyTorch"]
            onnx_speed = len(images) / best["onnxruntime"]
            rows.append([name, f"{torch_speed:.2f}", f"{onnx_speed:.2f}",
                         f"{onnx_speed / torch_speed:.2f}x", sum(best["PyTorch boxes"])])
    print(f"{len(images)} coco128 images, {args.size} px, one image per call, {args.threads} "
          f"threads, best of {args.repeat}")
    print(markdown_table(["model", "PyTorch img/s", "onnxruntime img/s", "onnxruntime vs PyTorch",
                          "boxes >= 0.25"], rows))


if __name__ == "__main__":
    main()
