"""A small, deterministic RGB + LWIR detection dataset: the demo's and the tests' default data.

    card = make_synthetic_dataset("runs/demo/data")        # -> runs/demo/data/synthetic.yaml
    records = read_dataset(card, split="train")             # modalities rgb + lwir

Three shape classes - circle, square, triangle - of 14..45 px on textured backgrounds. Each class
leans to one hue (circles reddish, squares greenish, triangles bluish, +-40 degrees), so a small
detector learns them quickly from RGB, while the thermal image carries the shapes alone.
Every RGB image has an LWIR partner (16-bit PNG, same stem, same geometry) in which the objects
are warmer than the ground (ground ~16000-22000, objects 30000-46000 of 65535) under sensor
noise and a slight blur. About one image in twelve has no object (a negative).

Layout (COCO json, category ids 1..3 so readers must map them to labels 0..2):

    out_dir/synthetic.yaml                dataset card (format coco, modalities rgb + lwir)
    out_dir/annotations/{train,val}.json
    out_dir/rgb/{train,val}/<split>_0000.png     8-bit RGB
    out_dir/lwir/{train,val}/<split>_0000.png    16-bit grey

Every image is drawn from its own generator seeded by (seed, split, index): the same seed gives
byte-identical files, and changing num_train leaves the val images as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

CLASSES = ["circle", "square", "triangle"]
CATEGORY_IDS = [1, 2, 3]
# class hue in OpenCV units (0..180 for 0..360 degrees): red, green, blue
_HUES = [0, 60, 120]
_HUE_JITTER = 20  # +-40 degrees
_SPLITS = {"train": 0, "val": 1}
_NEGATIVE_RATE = 1 / 12
_MIN_SIDE, _MAX_SIDE = 14, 44


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1], [H,W] float32: a coarse random grid, upsampled."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _shape_mask(kind: str, rng: np.random.Generator, width: int, height: int, x: int, y: int,
                side: int) -> np.ndarray:
    """[H,W] bool mask of one shape whose bounding square starts at (x, y)."""
    mask = np.zeros((height, width), np.uint8)
    if kind == "circle":
        radius = side // 2
        cv2.circle(mask, (x + radius, y + radius), radius, 1, thickness=-1)
    elif kind == "square":
        cv2.rectangle(mask, (x, y), (x + side - 1, y + side - 1), 1, thickness=-1)
    else:  # a triangle pointing up, its apex jittered sideways
        apex = x + side // 2 + int(rng.integers(-side // 6, side // 6 + 1))
        points = np.array([[apex, y], [x, y + side - 1], [x + side - 1, y + side - 1]], np.int32)
        cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def _colour(rng: np.random.Generator, label: int) -> np.ndarray:
    """A saturated RGB colour whose hue leans to the class's hue; float32 [3] in 0..255."""
    hue = (_HUES[label] + int(rng.integers(-_HUE_JITTER, _HUE_JITTER + 1))) % 180
    hsv = np.array([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _place(rng: np.random.Generator, width: int, height: int, side: int,
           taken: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """A top-left corner for a side x side square that keeps 3 px off every placed object."""
    for _ in range(30):
        x = int(rng.integers(0, width - side + 1))
        y = int(rng.integers(0, height - side + 1))
        if all(x + side + 3 <= x0 or x0 + s + 3 <= x or y + side + 3 <= y0 or y0 + s + 3 <= y
               for x0, y0, s, _ in taken):
            return x, y
    return None


def draw_scene(rng: np.random.Generator, width: int, height: int):
    """One scene: (rgb [H,W,3] uint8, lwir [H,W] uint16, objects [(label, mask [H,W] bool)])."""
    # RGB ground: a muted base colour with large soft blotches and fine grain
    base = rng.uniform(70, 170, 3).astype(np.float32) * rng.uniform(0.8, 1.0)
    rgb = base + 35 * _smooth_field(rng, width, height, 4)[:, :, None]
    rgb = rgb + 15 * _smooth_field(rng, width, height, 12)[:, :, None] * rng.uniform(-1, 1, 3)
    # thermal ground: cool, with its own gentle variation
    ground = rng.uniform(16000, 22000)
    lwir = ground + 2500 * _smooth_field(rng, width, height, 5)

    objects, taken = [], []
    count = 0 if rng.random() < _NEGATIVE_RATE else int(rng.integers(1, 5))
    for _ in range(count):
        label = int(rng.integers(0, len(CLASSES)))
        side = int(rng.integers(_MIN_SIDE, _MAX_SIDE + 1))
        corner = _place(rng, width, height, side, taken)
        if corner is None:
            continue
        taken.append((*corner, side, label))
        mask = _shape_mask(CLASSES[label], rng, width, height, *corner, side)
        shading = 1.0 + 0.12 * _smooth_field(rng, width, height, 3)[mask][:, None]
        rgb[mask] = _colour(rng, label) * shading
        heat = rng.uniform(30000, 46000)
        lwir[mask] = heat * (1.0 + 0.03 * _smooth_field(rng, width, height, 3)[mask])
        objects.append((label, mask))

    rgb = rgb + rng.normal(0, 4, rgb.shape)
    # thermal optics blur a little; the sensor adds noise
    lwir = cv2.GaussianBlur(lwir.astype(np.float32), (0, 0), 0.8) + rng.normal(0, 250, lwir.shape)
    return (rgb.clip(0, 255).round().astype(np.uint8),
            lwir.clip(0, 65535).round().astype(np.uint16), objects)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the PNG")
    path.write_bytes(data.tobytes())


def _write_split(out: Path, split: str, count: int, size: tuple[int, int], seed: int,
                 progress: bool) -> None:
    width, height = size
    for modality in ("rgb", "lwir"):
        (out / modality / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in tqdm(range(count), desc=f"synthetic {split}", unit="img", disable=not progress,
                      leave=False):
        rng = np.random.default_rng([seed, _SPLITS[split], index])
        rgb, lwir, objects = draw_scene(rng, width, height)
        name = f"{split}_{index:04d}.png"
        _write_png(out / "rgb" / split / name, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        _write_png(out / "lwir" / split / name, lwir)
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for label, mask in objects:
            ys, xs = np.nonzero(mask)
            x0, y0 = int(xs.min()), int(ys.min())
            box = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]  # tight, xywh px
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": CATEGORY_IDS[label], "bbox": box,
                                "area": int(mask.sum()), "iscrowd": 0})
    coco = {
        "info": {"description": f"detector synthetic shapes, {split}, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name, "supercategory": "shape"}
                       for cid, name in zip(CATEGORY_IDS, CLASSES)],
    }
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "annotations" / f"{split}.json").write_text(json.dumps(coco, indent=1) + "\n")


def synthetic_files(num_train: int = 48, num_val: int = 16) -> list[str]:
    """The files `make_synthetic_dataset` writes, relative to its out_dir (to claim them first)."""
    files = ["synthetic.yaml"]
    for split, count in (("train", num_train), ("val", num_val)):
        if count > 0:
            files.append(f"annotations/{split}.json")
            files += [f"{m}/{split}/{split}_{i:04d}.png" for m in ("rgb", "lwir") for i in range(count)]
    return files


def make_synthetic_dataset(out_dir, num_train: int = 48, num_val: int = 16,
                           size: tuple[int, int] = (160, 128), seed: int = 0,
                           progress: bool = False) -> Path:
    """Write the synthetic RGB + LWIR dataset into out_dir; returns the card out_dir/synthetic.yaml.

    size is (width, height) in pixels; num_train / num_val images per split (0 skips a split);
    progress shows a progress bar per split.
    The card's root is out_dir as an absolute path: card roots that are relative are taken
    relative to DETECTOR_DATA (see detector/data/cards.py)."""
    width, height = size
    if min(width, height) < _MAX_SIDE + 4:
        raise ValueError(f"make_synthetic_dataset: size {size} is too small; "
                         f"both sides must be >= {_MAX_SIDE + 4} px")
    out = Path(out_dir)
    counts = {"train": num_train, "val": num_val}
    splits = {}
    for split, count in counts.items():
        if count > 0:
            _write_split(out, split, count, (width, height), seed, progress)
            splits[split] = {"images": split, "annotations": f"annotations/{split}.json"}
    if not splits:
        raise ValueError("make_synthetic_dataset: num_train and num_val are both 0")
    card = {
        "description": f"synthetic shapes, RGB + LWIR (16-bit), seed {seed}",
        "format": "coco",
        "root": str(out.resolve()),
        "classes": list(CLASSES),
        "modalities": {"rgb": "rgb", "lwir": "lwir"},
        "splits": splits,
    }
    path = out / "synthetic.yaml"
    path.write_text("# written by detector.data.synthetic.make_synthetic_dataset\n"
                    + yaml.safe_dump(card, sort_keys=False))
    return path
