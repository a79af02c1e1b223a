"""Setting 2 of the domain-adaptation bench (configs/bench_adapt_llvip_ir.yaml): LLVIP visible ->
infrared, no infrared labels.

    DETECTOR_DATA=../shared/data DETECTOR_WEIGHTS=../shared/weights \\
      .venv/bin/python benchmarks/adapt_llvip_visible_to_ir.py        # the data (below)
    .venv/bin/python benchmarks/adapt_zero_shot.py configs/bench_adapt_llvip_ir.yaml
    detector bench configs/bench_adapt_llvip_ir.yaml

Writes runs/data/llvip_visible_to_ir/ from $DETECTOR_DATA/llvip_mini (labels as YOLO txt,
`person` = 0; every image downscaled from 1280x1024 to --size, 320x256 by default, because the
bench's model sees 320 px anyway and decoding and augmenting the full frames cost more CPU than
the model: the boxes are normalised, so they stay exact):
- train: the 50 visible train images with their labels (the source domain)
- target: the 50 infrared train images and the 45 unlabelled pairs' infrared images, no labels
  (a plain folder: the adaptation reads the images only)
- test: the 5 infrared test images (YOLO labels/test) and the 50 extra_ir_only infrared images
  (VOC Annotations/), labelled, never trained on by any row
- oracle: the 50 infrared train images with their labels (the oracle row only)
- data.yaml (train, test, oracle, names) and card.yaml

The bench reads every split as `lwir` (one grey channel), the channel count of the converted
model; the visible images become grey photographs, so the gap is the spectrum, not the colour.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def _downscale(image: Path, out: Path, size: int) -> None:
    """Write `image` to `out` (replacing a file or link there) with its longest side `size`."""
    pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise SystemExit(f"{image}: cannot decode")
    scale = size / max(pixels.shape[:2])
    if scale < 1:
        pixels = cv2.resize(pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
    if out.is_symlink() or out.exists():
        out.unlink()
    if not cv2.imwrite(str(out), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise SystemExit(f"{out}: cannot write")


def _renumbered(records_list):
    """One DatasetRecords holding the images of all of `records_list` (same classes), with image
    ids 0..N-1 (YOLO/VOC ids are positions in their own split)."""
    from detector.data.records import DatasetRecords

    images = []
    for records in records_list:
        for record in records.images:
            record.image_id = len(images)
            images.append(record)
    first = records_list[0]
    return DatasetRecords(images, class_names=list(first.class_names),
                          category_ids=list(first.category_ids), modalities=list(first.modalities),
                          problems=[p for r in records_list for p in r.problems], source=first.source)


def prepare(out: Path, size: int) -> None:
    from detector.data.readers import read_dataset
    from detector.data.writers import write_yolo

    data = Path(os.environ["DETECTOR_DATA"]) / "llvip_mini"
    source = read_dataset(data / "data_visible.yaml", split="train", modalities=["lwir"])
    ir_test = read_dataset("llvip_mini_ir", split="test", modalities=["lwir"])
    extra = read_dataset(data, format="voc", images=data / "extra_ir_only" / "infrared",
                         labels=data / "Annotations", modalities=["lwir"])
    for name, records in (("source", source), ("infrared test", ir_test), ("extra_ir_only", extra)):
        if list(records.class_names) != ["person"] or len(records) == 0:
            raise SystemExit(f"{data}: {name}: expected person-labelled images, got "
                             f"{len(records)} images of {records.class_names}")
    oracle = read_dataset("llvip_mini_ir", split="train", modalities=["lwir"])
    test = _renumbered([ir_test, extra])
    splits = {"train": source, "test": test, "oracle": oracle}
    for split, records in splits.items():
        write_yolo(records, out, split=split, link=True, overwrite=True, read_folders=[data])
    for split, records in splits.items():
        for record in records.images:
            image = Path(record.paths["lwir"])
            _downscale(image, out / "images" / split / image.name, size)
    target = out / "images" / "target"
    target.mkdir(parents=True, exist_ok=True)
    images = sorted((data / "infrared" / "train").glob("*.jpg"))
    images += sorted((data / "unlabeled_pairs" / "infrared").glob("*.jpg"))
    for image in images:
        _downscale(image, target / image.name, size)
    boxes = lambda records: sum(len(r.boxes) for r in records.images)  # noqa: E731
    print(f"{out}: train {len(source)} visible images ({boxes(source)} boxes), target "
          f"{len(images)} infrared images (no labels), test {len(test)} infrared images "
          f"({boxes(test)} boxes), oracle {len(oracle)} infrared images ({boxes(oracle)} boxes), "
          f"longest side {size} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "data" / "llvip_visible_to_ir")
    parser.add_argument("--size", type=int, default=320, help="longest image side written (px)")
    args = parser.parse_args()
    prepare(args.out, args.size)


if __name__ == "__main__":
    main()
