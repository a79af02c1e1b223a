"""`detector predict`: run a model on images, image pairs or videos; write annotated copies.

    detector predict --model M --source DIR_OR_IMAGE_OR_VIDEO --out DIR [--conf 0.25]
    detector predict --model M --modalities rgb=DIR lwir=DIR --out DIR      (RGB + LWIR pairs)

M: a run checkpoint, a YOLOv5 / ultralytics .pt, a registered arch, or an exported m.onnx (run
with onnxruntime). Images (8- or 16-bit, e.g. thermal PNG / TIFF) are read as the model's
modality: rgb -> 3 channels, lwir -> 1 grey channel. A model of several modalities (rgb + lwir,
4 channels) takes pairs: one folder per modality, files matched by stem as the data layer
matches them; a file without its partner is an error naming it.

OUT gets, for images: an annotated copy of each (the first modality's image, same size and
relative path; 16-bit images are stretched to their own min..max for display),
OUT/predictions.json (COCO results: [{image_id, category_id, bbox [x, y, w, h] px, score}]) and
OUT/images.json (the COCO images and categories those ids refer to, annotations empty: load
both with pycocotools' COCO("images.json").loadRes("predictions.json")). Category ids: the
COCO ids for a model of the 80 COCO classes, else label + 1.
For a video: OUT/<name> (annotated, same frame size and rate) and OUT/<stem>.jsonl, one line
per frame {"frame", "time_s", "detections": [{bbox, score, category_id, class}]}.
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
    p = subparsers.add_parser("predict", help="detect objects in images, image pairs or videos",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="run checkpoint, registered arch, "
                   "YOLOv5/ultralytics .pt, weights name, or an exported .onnx")
    p.add_argument("--source", help="an image file, a folder of images, or a video file")
    p.add_argument("--modalities", nargs="+", metavar="NAME=DIR",
                   help="paired folders, one per modality in the model's order, e.g. "
                        "rgb=visible/ lwir=infrared/")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--conf", type=float, default=0.25, help="lowest score kept (default 0.25)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out that an earlier detector run did not write")
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


def to_display(image: np.ndarray, stretch: bool = False) -> np.ndarray:
    """[H,W,C] float 0..1 (RGB or grey) -> [H,W,3] uint8 BGR for drawing and saving.
    `stretch`: map the image's own min..max to 0..255 (16-bit thermal fills a slice of 0..1)."""
    import cv2

    if stretch:
        low, high = float(image.min()), float(image.max())
        image = (image - low) / max(high - low, 1e-12)
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


def _model_modalities(detector) -> list[str]:
    modalities = list(detector.modalities)
    return modalities or (["rgb"] if detector.in_channels == 3 else ["lwir"])


def _paired_folders(values: list[str], modalities: list[str]) -> dict[str, Path]:
    """--modalities NAME=DIR ... -> {name: folder}, in the model's modality order."""
    folders = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise ConfigError(f"--modalities {value!r}: expected NAME=DIR, e.g. rgb=visible/")
        folders[name] = Path(folder)
    if list(folders) != modalities:
        raise ConfigError(f"--modalities: this model reads {' + '.join(modalities)} images (in that "
                          f"order); got {' + '.join(folders)}")
    return folders


def _category_ids(class_names: list[str]) -> list[int]:
    from detector.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

    if tuple(class_names) == COCO_CLASSES:
        return list(COCO_CATEGORY_IDS)
    return list(range(1, len(class_names) + 1))


def read_inputs(source: Path | None, folders: dict[str, Path] | None, modalities: list[str],
                class_names: list[str]):
    """(DatasetRecords of the files to predict on, image ids 1..N, without boxes; the folder
    their relative paths start at). Pairs are matched by stem with the data layer's pairing;
    a file without its partner raises DatasetError naming the folder and the stems."""
    from detector.data.readers import index_images, pair_modalities
    from detector.data.records import DatasetRecords, ImageRecord

    first = modalities[0]
    if folders:
        root = folders[first]
        if not root.is_dir():
            raise DatasetError(f"--modalities {first}={root}: no such folder")
        files = list(index_images(root).values())
        if not files:
            raise DatasetError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    else:
        files = find_images(source)
        root = source if source.is_dir() else source.parent
    records = DatasetRecords([ImageRecord(index + 1, {first: path}, 0, 0)
                              for index, path in enumerate(files)],
                             list(class_names), _category_ids(class_names), [first], source=str(root))
    if folders:
        records = pair_modalities(records, {first: None, **{m: folders[m] for m in modalities[1:]}})
        unpaired = [p for p in records.problems if p.kind == "missing_pair"]
        if unpaired:
            raise DatasetError(f"{unpaired[0].file}: unpaired files: {unpaired[0].message}")
    return records, root


def load_inputs(record, modalities: list[str]) -> tuple[np.ndarray, bool]:
    """([H,W,C] float 0..1, channels stacked in modality order; whether it was 16-bit)."""
    from detector.data.images import load_modality, to_float

    arrays = [load_modality(record.paths[m], m) for m in modalities]
    for modality, array in zip(modalities[1:], arrays[1:]):
        if array.shape[:2] != arrays[0].shape[:2]:
            raise DatasetError(f"{record.paths[modality]}: is {array.shape[1]}x{array.shape[0]} "
                               f"but its {modalities[0]} partner {record.paths[modalities[0]]} is "
                               f"{arrays[0].shape[1]}x{arrays[0].shape[0]}")
    record.height, record.width = arrays[0].shape[:2]
    return np.concatenate([to_float(a) for a in arrays], 2), arrays[0].dtype == np.uint16


def _tensor(image: np.ndarray, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)


def _kept(output: dict, conf: float) -> dict:
    keep = output["scores"] >= conf
    return {key: output[key][keep].detach().cpu() for key in ("boxes", "scores", "labels")}


def predict_images(detector, records, root: Path, out_dir: Path, args, device, bar) -> int:
    """Annotated copies, predictions.json and images.json for `records`; returns the count."""
    import cv2

    from detector.evaluation.coco import predictions_to_coco
    from detector.evaluation.truth import records_to_coco

    modalities = _model_modalities(detector)
    display_channels = 3 if modalities[0] == "rgb" else 1
    outputs = []
    for start in range(0, len(records.images), args.batch_size):
        batch = records.images[start:start + args.batch_size]
        loaded = [load_inputs(record, modalities) for record in batch]
        found = detector([_tensor(image, device) for image, _ in loaded])
        for record, (image, sixteen_bit), output in zip(batch, loaded, found):
            output = _kept(output, args.conf)
            outputs.append(output)
            path = record.paths[modalities[0]]
            target = out_dir / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.resolve() == path.resolve():
                raise ConfigError(f"--out {out_dir}: would overwrite the source image {path}")
            picture = to_display(image[:, :, :display_channels], stretch=sixteen_bit)
            if not cv2.imwrite(str(target), draw_detections(picture, _drawn(output, records.class_names))):
                raise DatasetError(f"{target}: OpenCV could not write the annotated image")
        bar.update(len(batch))
    coco = records_to_coco(records)
    for entry, record in zip(coco["images"], records.images):
        entry["file_name"] = record.paths[modalities[0]].relative_to(root).as_posix()
        entry.update({f"{m}_file": record.paths[m].name for m in modalities[1:]})
    results = predictions_to_coco(records, outputs)
    (out_dir / "images.json").write_text(json.dumps(coco, indent=1) + "\n")
    (out_dir / "predictions.json").write_text(json.dumps(results) + "\n")
    return len(results)


def _drawn(output: dict, class_names: list[str]) -> list[dict]:
    return [{"box": box, "score": score, "label": label, "class": class_names[label]}
            for box, score, label in zip(output["boxes"].tolist(), output["scores"].tolist(),
                                         output["labels"].tolist())]


def predict_video(detector, video, out_dir: Path, args, device) -> tuple[int, int]:
    """Annotated copy of `video` (detector.video.Video, opened) and one json line per frame;
    returns (frames, detections)."""
    import cv2
    from tqdm import tqdm

    from detector.boxes import xyxy_to_xywh
    from detector.video import open_writer

    modalities = _model_modalities(detector)
    path = video.path
    target, lines_path = out_dir / path.name, out_dir / f"{path.stem}.jsonl"
    if target.resolve() == path.resolve():
        raise ConfigError(f"--out {out_dir}: would overwrite the source video {path}")
    class_names, category_ids = list(detector.class_names), _category_ids(detector.class_names)
    writer = open_writer(target, video.fps, video.width, video.height)
    frames = count = 0
    with open(lines_path, "w") as lines, tqdm(total=video.frame_count, unit="frame",
                                              desc="predict") as bar:
        def flush(batch):
            nonlocal count
            images = [frame if modalities[0] == "rgb" else
                      cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[:, :, None] for _, frame in batch]
            found = detector([_tensor(image.astype(np.float32) / 255.0, device) for image in images])
            for (index, frame), output in zip(batch, found):
                output = _kept(output, args.conf)
                picture = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                writer.write(draw_detections(picture, _drawn(output, class_names)))
                boxes = xyxy_to_xywh(output["boxes"].double().numpy().reshape(-1, 4)).tolist()
                detections = [{"bbox": box, "score": score, "category_id": category_ids[label],
                               "class": class_names[label]}
                              for box, score, label in zip(boxes, output["scores"].tolist(),
                                                           output["labels"].tolist())]
                lines.write(json.dumps({"frame": index, "time_s": index / video.fps,
                                        "detections": detections}) + "\n")
                count += len(detections)
            bar.update(len(batch))

        batch = []
        try:
            for index, frame in video.frames():
                batch.append((index, frame))
                frames += 1
                if len(batch) == args.batch_size:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
        finally:
            writer.release()
    if frames == 0:
        raise DatasetError(f"{path}: the video has no frames OpenCV can decode")
    return frames, count


def _load(spec: str, device):
    from detector.export import is_exported, load_exported
    from detector.models.loading import load_model

    if is_exported(spec):
        return load_exported(spec)  # onnxruntime on the CPU
    return load_model(spec, device=device)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from detector.outputs import claim_outputs
    from detector.runtime import resolve_device
    from detector.video import is_video, open_video

    if not 0.0 <= args.conf <= 1.0:
        raise ConfigError(f"--conf: expected a score between 0 and 1, got {args.conf}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive number, got {args.batch_size}")
    if bool(args.source) == bool(args.modalities):
        raise ConfigError("detector predict: give --source (images or a video) or --modalities "
                          "NAME=DIR ... (paired folders), not both")
    source, out_dir = (Path(args.source) if args.source else None), Path(args.out)
    if source is not None and not source.exists():
        raise DatasetError(f"{source}: no such image file, folder or video")
    device = resolve_device(args.device, "--device")
    detector = _load(args.model, device)
    modalities = _model_modalities(detector)
    folders = _paired_folders(args.modalities, modalities) if args.modalities else None
    if folders is None and len(modalities) != 1:
        raise ConfigError(f"--source: this model reads {' + '.join(modalities)} images together "
                          f"({detector.in_channels} channels); give one folder per modality: "
                          f"--modalities {' '.join(f'{m}=DIR' for m in modalities)}")
    claim = dict(flag="--out", overwrite=args.overwrite)
    with torch.inference_mode():
        if source is not None and is_video(source):
            video = open_video(source)  # before --out is claimed: a bad video leaves nothing
            claim_outputs(out_dir, [source.name, f"{source.stem}.jsonl"], reads=[source], **claim)
            frames, count = predict_video(detector, video, out_dir, args, device)
            print(f"{count} detections in {frames} frames -> {out_dir / source.name} "
                  f"({source.stem}.jsonl)")
            return 0
        records, root = read_inputs(source, folders, modalities, list(detector.class_names))
        files = [path for record in records.images for path in record.paths.values()]
        names = [record.paths[modalities[0]].relative_to(root).as_posix()
                 for record in records.images] + ["predictions.json", "images.json"]
        claim_outputs(out_dir, names, reads=files,
                      read_folders=list((folders or {}).values())
                      or ([source] if source.is_dir() else []), **claim)
        with tqdm(total=len(records.images), unit="img", desc="predict") as bar:
            count = predict_images(detector, records, root, out_dir, args, device, bar)
    print(f"{count} detections in {len(records.images)} images -> {out_dir} "
          "(predictions.json, images.json)")
    return 0
