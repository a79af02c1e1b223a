"""`detector predict`: run a model on images, write annotated copies and a predictions json.

    detector predict --model M --source DIR_OR_IMAGE --out DIR [--conf 0.25]
                     [--batch-size N] [--device D]

For every image under SOURCE (a folder is searched recursively) OUT gets a copy with the boxes,
class names and scores drawn, at the same relative path, and OUT/predictions.json holds

    {"model": M, "class_names": [...], "conf": 0.25,
     "images": [{"file": relative path, "width", "height",
                 "detections": [{"box": [x1, y1, x2, y2] px, "score", "label", "class"}]}]}

The model's modality decides how a file is read: rgb -> 3 channels (RGB order), lwir -> 1 grey
channel. Models of several modalities at once (rgb + lwir) need paired images: use `detector eval`
with a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detector.errors import ConfigError, DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# distinct colours (BGR) for class labels, cycled
PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
           (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
           (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
           (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255)]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="detect objects in images; write annotated copies",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="run checkpoint, registered arch, "
                   "YOLOv5/ultralytics .pt, or weights name")
    p.add_argument("--source", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--conf", type=float, default=0.25, help="lowest score kept (default 0.25)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out that detector did not write")
    p.set_defaults(func=run)


def find_images(source: Path) -> list[Path]:
    """The image files of `source` (itself if a file), sorted; DatasetError if there are none."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DatasetError(f"{source}: no such image file or folder")
    found = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not found:
        raise DatasetError(f"{source}: no images found (looked for "
                           f"{', '.join(IMAGE_SUFFIXES)}, in subfolders too)")
    return found


def to_display(image: np.ndarray) -> np.ndarray:
    """[H,W,C] float 0..1 (RGB or grey) -> [H,W,3] uint8 BGR for drawing and saving."""
    import cv2

    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if pixels.shape[2] == 1:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def draw_detections(image: np.ndarray, detections: list[dict]) -> np.ndarray:
    """Draw boxes and "class score" labels on a BGR uint8 image, in place; returns it."""
    import cv2

    thickness = max(1, round(min(image.shape[:2]) / 400))
    # lowest score first, so the labels of the surest detections end up on top
    for detection in sorted(detections, key=lambda d: d["score"]):
        x1, y1, x2, y2 = (int(round(v)) for v in detection["box"])
        colour = PALETTE[detection["label"] % len(PALETTE)]
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        text = f"{detection['class']} {detection['score']:.2f}"
        scale = 0.45 * thickness
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        # the label sits above the box, or inside it when the box touches the top edge
        top = y1 - height - baseline if y1 - height - baseline >= 0 else y1
        cv2.rectangle(image, (x1, top), (x1 + width, top + height + baseline), colour, -1)
        cv2.putText(image, text, (x1, top + height), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


def _modality(detector) -> str:
    modalities = list(detector.modalities)
    if not modalities:
        modalities = ["rgb"] if detector.in_channels == 3 else ["lwir"]
    if len(modalities) != 1:
        raise ConfigError(f"this model reads {' + '.join(modalities)} images together; predict "
                          "takes one image per file. Use `detector eval` on a paired dataset")
    return modalities[0]


def _detections(output: dict, class_names: list[str], conf: float) -> list[dict]:
    boxes = output["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
    scores = output["scores"].detach().float().cpu().numpy().reshape(-1)
    labels = output["labels"].detach().cpu().numpy().reshape(-1)
    order = np.argsort(-scores, kind="stable")
    return [{"box": [round(float(v), 2) for v in boxes[i]], "score": round(float(scores[i]), 4),
             "label": int(labels[i]), "class": class_names[int(labels[i])]}
            for i in order if scores[i] >= conf]


def run(args) -> int:
    import cv2
    import torch
    from tqdm import tqdm

    from detector.data.images import load_modality, to_float
    from detector.models.loading import load_model
    from detector.outputs import check_outputs, claim_outputs
    from detector.runtime import resolve_device

    if not 0.0 <= args.conf <= 1.0:
        raise ConfigError(f"--conf: expected a score between 0 and 1, got {args.conf}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive number, got {args.batch_size}")
    source, out_dir = Path(args.source), Path(args.out)
    files = find_images(source)
    device = resolve_device(args.device, "--device")
    root = source if source.is_dir() else source.parent
    names = [path.relative_to(root).as_posix() for path in files] + ["predictions.json"]
    claim = dict(flag="--out", reads=files, read_folders=[source] if source.is_dir() else [],
                 overwrite=args.overwrite)
    check_outputs(out_dir, names, **claim)  # before the model loads
    detector = load_model(args.model, device=device)
    modality = _modality(detector)
    class_names = list(detector.class_names)
    claim_outputs(out_dir, names, **claim)
    entries = []
    with torch.inference_mode(), tqdm(total=len(files), unit="img", desc="predict") as bar:
        for start in range(0, len(files), args.batch_size):
            batch = files[start:start + args.batch_size]
            images = [to_float(load_modality(path, modality)) for path in batch]
            tensors = [torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
                       for image in images]
            for path, image, output in zip(batch, images, detector(tensors)):
                detections = _detections(output, class_names, args.conf)
                relative = path.relative_to(root)
                target = out_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(target), draw_detections(to_display(image), detections)):
                    raise DatasetError(f"{target}: OpenCV could not write the annotated image")
                entries.append({"file": relative.as_posix(), "width": image.shape[1],
                                "height": image.shape[0], "detections": detections})
            bar.update(len(batch))
    report = {"model": str(args.model), "class_names": class_names, "conf": args.conf,
              "images": entries}
    (out_dir / "predictions.json").write_text(json.dumps(report, indent=1) + "\n")
    count = sum(len(entry["detections"]) for entry in entries)
    print(f"{count} detections in {len(entries)} images -> {out_dir} (predictions.json)")
    return 0
