"""Augmentation and letterbox: albumentations pipelines built from a YAML list.

    augment:
      - {name: HorizontalFlip, p: 0.5}                         # geometric: every modality
      - {name: Affine, scale: [0.75, 1.25], p: 0.5}
      - {name: RandomBrightnessContrast, p: 0.3, modality: rgb}  # photometric: rgb only
      - {name: RandomBrightnessContrast, p: 0.3, modality: lwir}
      - GaussianBlur                                            # a bare name: default arguments
      - {MotionBlur: {p: 0.2}}                                  # {name: {arguments}} also works

`Mosaic` ({name: Mosaic, p: 1.0}, first in the list) tiles four samples into one before the
other transforms (see detector/data/mosaic.py); the dataset draws the other three.

Each entry names an albumentations transform and its keyword arguments.
- Geometric transforms (albumentations `DualTransform`: flips, affine, crops, ...) move every
  modality identically: the modalities are stacked into one [H,W,C] array and transformed in one
  call, so they share one draw of the random parameters and one interpolation. Boxes and ignore
  regions move with them (pascal_voc = xyxy pixels); a box left with less than
  `min_visibility` of its area is dropped.
- Photometric transforms (`ImageOnlyTransform`: colour, blur, noise) touch only the modality
  named by `modality:` (a name or a list). Without it: "rgb" when the data has rgb, else the
  data's first modality (so an LWIR-only dataset gets them on lwir). An entry for a modality the
  data does not have is skipped, so one list serves rgb, lwir and rgb+lwir data.
Images come out float32 0..1 (see images.to_float), so 16-bit thermal keeps its range. Inside,
8-bit data stays uint8 (albumentations' fast lookup-table paths; 1.9x the samples/s on bccd);
16-bit or mixed data is augmented in float.
(Some albumentations colour transforms work in 8 bits internally; a warning says so when one is
configured for lwir.)

After augmentation, a letterbox to `image_size`: the longest side is scaled to image_size and
the short side padded (centred, value PAD_VALUE) to a square. The result records the letterbox as
`scale` (sx, sy) and `pad` (px, py): letterboxed = augmented * scale + pad, per coordinate.
With train=False there is no augmentation, so that relation maps the original image.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Mapping

import albumentations as A
import cv2
import numpy as np
import torch

from detector.data.images import MODALITY_CHANNELS, to_float
from detector.errors import ConfigError, suggestion

# A sensible default for fine-tuning: flips, mild scale/shift, colour on rgb, contrast on lwir.
DEFAULT_TRAIN_AUGMENT = [
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "Affine", "scale": [0.8, 1.2], "translate_percent": [-0.1, 0.1], "p": 0.5},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.2, "contrast_limit": 0.2,
     "p": 0.5, "modality": "rgb"},
    {"name": "HueSaturationValue", "hue_shift_limit": 10, "sat_shift_limit": 25,
     "val_shift_limit": 15, "p": 0.3, "modality": "rgb"},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.1, "contrast_limit": 0.2,
     "p": 0.5, "modality": "lwir"},
]

# ultralytics' letterbox grey (114 / 255)
PAD_VALUE = 114.0 / 255.0
# albumentations transforms that do not fit a plain (images, boxes) detection sample
_UNSUPPORTED = {
    "DualTransform", "ImageOnlyTransform", "Lambda", "NoOp", "Mosaic", "OverlayElements",
    "CropNonEmptyMaskIfExists", "MaskDropout", "RandomCropNearBBox", "FDA", "HistogramMatching",
    "PixelDistributionAdaptation", "TextImage", "Normalize", "ToFloat", "FromFloat",
}


def _transform_classes() -> dict[str, type]:
    """name -> albumentations class, for every geometric and photometric 2-D transform."""
    found = {}
    for name in dir(A):
        cls = getattr(A, name)
        if (inspect.isclass(cls) and issubclass(cls, (A.DualTransform, A.ImageOnlyTransform))
                and name not in _UNSUPPORTED and "3D" not in name):
            found[name] = cls
    return found


TRANSFORMS = _transform_classes()


def _parse_entry(entry, where: str) -> tuple[str, dict, list[str] | None]:
    """(name, keyword arguments, modalities or None) of one list entry."""
    if isinstance(entry, str):
        return entry, {}, None
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a transform name or a mapping "
                          f"{{name: ..., <arguments>}}, got {entry!r}")
    entry = dict(entry)
    if "name" in entry:
        name = entry.pop("name")
    elif len(entry) == 1 and isinstance(next(iter(entry.values())), (Mapping, type(None))):
        name, arguments = next(iter(entry.items()))
        entry = dict(arguments or {})
    else:
        raise ConfigError(f"{where}: expected {{name: <transform>, ...}} or "
                          f"{{<transform>: {{arguments}}}}, got {entry!r}")
    modality = entry.pop("modality", None)
    if modality is not None:
        modality = [modality] if isinstance(modality, str) else list(modality)
        for m in modality:
            if m not in MODALITY_CHANNELS:
                raise ConfigError(f"{where}: unknown modality {m!r}; expected one of "
                                  f"{', '.join(MODALITY_CHANNELS)}")
    return str(name), entry, modality


def _make_transform(name: str, arguments: dict, where: str):
    if name not in TRANSFORMS:
        hint = suggestion(name, TRANSFORMS, what=None) or "expected"
        raise ConfigError(f"{where}: unknown transform {name!r}; {hint} (any albumentations "
                          "geometric or pixel transform, e.g. HorizontalFlip, Affine, "
                          "RandomBrightnessContrast)")
    cls = TRANSFORMS[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    for key in arguments:
        if key not in valid:
            raise ConfigError(f"{where}: {name} has no argument {key!r}; "
                              f"{suggestion(key, valid, 'valid')}")
    # YAML has lists where albumentations wants (low, high) tuples
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        message = " ".join(str(e).split())
        raise ConfigError(f"{where}: bad arguments for {name}: {message}") from e


def _dry_run(transform, channels: int, modality: str, where: str) -> None:
    """Run a photometric transform once on a small float image of `channels` channels, so a
    transform that cannot handle the modality fails here, at configuration time."""
    probe = copy.deepcopy(transform)
    probe.p = 1.0
    ramp = np.linspace(0.0, 1.0, 64 * 64 * channels, dtype=np.float32)
    image = ramp.reshape(64, 64, channels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = A.Compose([probe], seed=0)(image=image)["image"]
    except Exception as e:  # any failure here is a configuration mistake; chained for --debug
        message = " ".join(str(e).split())
        raise ConfigError(f"{where}: {type(transform).__name__} cannot run on the "
                          f"{channels}-channel {modality} image: {message}") from e
    out_shape = out.shape if out.ndim == 3 else (*out.shape, 1)
    if out_shape != image.shape:
        raise ConfigError(f"{where}: {type(transform).__name__} turns the {channels}-channel "
                          f"{modality} image {image.shape} into {out_shape}; photometric "
                          "transforms must keep the size and the channels")
    if modality == "lwir" and len(np.unique(out)) <= 256:
        warnings.warn(f"{where}: {type(transform).__name__} works in 8 bits and reduces 16-bit "
                      "lwir images to 256 levels; prefer RandomBrightnessContrast, RandomGamma, "
                      "GaussNoise or GaussianBlur for thermal images", stacklevel=3)


class DetectionTransforms:
    """Callable: (images {modality: [H,W,C]}, boxes [N,4] xyxy px, labels [N], ignore [K,4])
    -> {"images", "boxes", "labels", "ignore", "scale": (sx, sy), "pad": (px, py)}.

    Images come back float32 0..1 (integer input is converted with images.to_float); boxes and
    ignore as float32 xyxy pixels of the returned images, labels int64."""

    def __init__(self, steps: list, image_size: int | None, min_visibility: float,
                 mosaic=None):
        # steps: ("geometric", Compose) or ("photometric", modalities or None, Compose)
        self.steps = steps
        self.image_size = image_size
        self.min_visibility = min_visibility
        # a data.mosaic.Mosaic or None: DetectionDataset combines four samples before calling us
        self.mosaic = mosaic
        self._seeded_from = None

    def __repr__(self) -> str:
        names = ["Mosaic"] if self.mosaic is not None else []
        names += [type(t).__name__ for step in self.steps for t in step[-1].transforms]
        return f"DetectionTransforms({names}, image_size={self.image_size})"

    def _reseed(self) -> None:
        """Seed the albumentations pipelines from torch's seed of this process.

        albumentations keeps its own random state, which a DataLoader worker inherits as a copy:
        without this every worker would draw the same augmentations. torch gives each worker
        (and each epoch's workers) its own seed, and `torch.manual_seed` makes runs repeatable."""
        seed = torch.initial_seed()
        if seed == self._seeded_from:
            return
        self._seeded_from = seed
        for index, step in enumerate(self.steps):
            step[-1].set_random_seed((seed + index) % 2**32)

    def __call__(self, images: dict, boxes, labels, ignore=None) -> dict:
        if not images:
            raise ValueError("transforms: no images given")
        self._reseed()
        images = {m: np.asarray(image) for m, image in images.items()}
        if any(image.dtype != np.uint8 for image in images.values()):
            # 16-bit (or mixed) data is augmented in float 0..1; all-8-bit data stays uint8 until
            # the end: albumentations' uint8 paths (lookup tables) are several times faster
            images = {m: to_float(image) for m, image in images.items()}
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        ignore = np.zeros((0, 4), np.float32) if ignore is None else (
            np.asarray(ignore, dtype=np.float32).reshape(-1, 4))
        for step in self.steps:
            if step[0] == "geometric":
                images, boxes, labels, ignore = _geometric(step[1], images, boxes, labels, ignore)
            else:
                for modality in _targets(step[1], images):
                    images[modality] = _keep_channel_axis(
                        step[2](image=images[modality])["image"])
        scale, pad = (1.0, 1.0), (0.0, 0.0)
        if self.image_size is not None:
            images, scale, pad = letterbox(images, self.image_size)
            factor = np.array([scale[0], scale[1]] * 2, np.float32)
            offset = np.array([pad[0], pad[1]] * 2, np.float32)
            boxes, ignore = boxes * factor + offset, ignore * factor + offset
        images = {m: to_float(image) for m, image in images.items()}
        return {"images": images, "boxes": boxes.astype(np.float32),
                "labels": labels.astype(np.int64), "ignore": ignore.astype(np.float32),
                "scale": scale, "pad": pad}


def _targets(modalities: list[str] | None, images: dict) -> list[str]:
    """The modalities a photometric step touches (see the module docstring for the default)."""
    if modalities is None:
        return ["rgb"] if "rgb" in images else [next(iter(images))]
    return [m for m in modalities if m in images]


def _keep_channel_axis(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


def _geometric(compose, images: dict, boxes, labels, ignore):
    """One call for all modalities: stacked along channels, split back after."""
    names = list(images)
    sizes = {images[m].shape[:2] for m in names}
    if len(sizes) > 1:
        raise ValueError(f"transforms: the modalities differ in size: "
                         f"{ {m: images[m].shape[:2] for m in names} }")
    widths = [images[m].shape[2] for m in names]
    stacked = np.concatenate([images[m] for m in names], axis=2)
    # boxes and ignore regions travel together; `kind` tells them apart afterwards
    out = compose(image=stacked, bboxes=np.concatenate([boxes, ignore]),
                  labels=np.concatenate([labels, np.full(len(ignore), -1, np.int64)]),
                  kind=np.concatenate([np.zeros(len(boxes), np.int64),
                                       np.ones(len(ignore), np.int64)]))
    result, start = {}, 0
    image = _keep_channel_axis(out["image"])
    for name, width in zip(names, widths):
        result[name] = np.ascontiguousarray(image[:, :, start:start + width])
        start += width
    moved = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    kind = np.asarray(out["kind"], dtype=np.int64).reshape(-1)
    moved_labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
    return result, moved[kind == 0], moved_labels[kind == 0], moved[kind == 1]


def letterbox(images: dict, size: int) -> tuple[dict, tuple[float, float], tuple[float, float]]:
    """Scale {modality: [H,W,C] uint8 or float} so the longest side is `size`, pad to size x size.

    Returns (images, (sx, sy), (px, py)) with letterboxed = input * scale + pad per coordinate.
    The padding is centred (integer pixels) and filled with PAD_VALUE (114 for uint8)."""
    height, width = next(iter(images.values())).shape[:2]
    ratio = size / max(height, width)
    new_width, new_height = max(1, round(width * ratio)), max(1, round(height * ratio))
    pad_x, pad_y = (size - new_width) // 2, (size - new_height) // 2
    # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    out = {}
    for modality, image in images.items():
        if (new_width, new_height) != (width, height):
            image = _keep_channel_axis(cv2.resize(image, (new_width, new_height),
                                                  interpolation=interpolation))
        fill = 114 if image.dtype == np.uint8 else PAD_VALUE
        canvas = np.full((size, size, image.shape[2]), fill, dtype=image.dtype)
        canvas[pad_y:pad_y + new_height, pad_x:pad_x + new_width] = image
        out[modality] = canvas
    return out, (new_width / width, new_height / height), (float(pad_x), float(pad_y))


def build_transforms(spec: list | None = None, image_size: int | None = None,
                     modalities: list[str] | None = None, train: bool = True,
                     min_visibility: float = 0.3) -> DetectionTransforms:
    """Build the sample transform from a YAML-style list (see the module docstring).

    - spec: list of entries; None means DEFAULT_TRAIN_AUGMENT, [] means no augmentation
    - image_size: letterbox size (longest side, padded square); None keeps the size
    - modalities: the data's modalities, when known: photometric entries are then checked
      (one dry run each) against the channels of the modality they touch
    - train: False skips augmentation entirely (evaluation: letterbox only)
    - min_visibility: boxes keeping less than this fraction of their area are dropped
    Raises ConfigError naming the entry (`augment[i]`) for an unknown transform (with the
    nearest valid name), an unknown argument or modality, or a transform that cannot run on
    its modality.
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise ConfigError(f"image_size: expected a positive integer, got {image_size!r}")
    if modalities is not None:
        for m in modalities:
            if m not in MODALITY_CHANNELS:
                raise ConfigError(f"modalities: unknown modality {m!r}; expected one of "
                                  f"{', '.join(MODALITY_CHANNELS)}")
    entries = DEFAULT_TRAIN_AUGMENT if spec is None else spec
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"augment: expected a list of transforms, got {entries!r}")
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["labels", "kind"],
                               min_visibility=min_visibility, clip=True,
                               filter_invalid_bboxes=True)
    steps: list = []
    mosaic = None
    for index, entry in enumerate(entries):
        where = f"augment[{index}]"
        name, arguments, targets = _parse_entry(entry, where)
        if name == "Mosaic":
            mosaic = _make_mosaic(arguments, targets, index, min_visibility, where)
            continue
        transform = _make_transform(name, arguments, where)
        if isinstance(transform, A.DualTransform):
            if targets is not None:
                raise ConfigError(f"{where}: {name} is geometric and moves every modality; "
                                  "remove `modality:`")
            if steps and steps[-1][0] == "geometric":
                steps[-1][1].append(transform)
            else:
                steps.append(["geometric", [transform]])
            continue
        if modalities is not None:
            for modality in _targets(targets, dict.fromkeys(modalities)):
                _dry_run(transform, MODALITY_CHANNELS[modality], modality, where)
        if steps and steps[-1][0] == "photometric" and steps[-1][1] == targets:
            steps[-1][2].append(transform)
        else:
            steps.append(["photometric", targets, [transform]])
    if not train:
        steps, mosaic = [], None
    built = []
    for step in steps:
        if step[0] == "geometric":
            built.append(("geometric", A.Compose(step[1], bbox_params=bbox_params)))
        else:
            built.append(("photometric", step[1], A.Compose(step[2])))
    return DetectionTransforms(built, image_size, min_visibility, mosaic)


def _make_mosaic(arguments: dict, targets, index: int, min_visibility: float, where: str):
    """The Mosaic of an `augment` entry; it mixes whole samples, so it runs first."""
    from detector.data.mosaic import Mosaic

    if index != 0:
        raise ConfigError(f"{where}: Mosaic combines four whole samples before any other "
                          "transform; list it first")
    if targets is not None:
        raise ConfigError(f"{where}: Mosaic moves every modality; remove `modality:`")
    unknown = [key for key in arguments if key not in ("p", "close_epochs")]
    if unknown:
        raise ConfigError(f"{where}: Mosaic has no argument {unknown[0]!r}; valid: p, close_epochs")
    try:
        return Mosaic(arguments.get("p", 1.0), min_visibility, arguments.get("close_epochs", 0))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
