"""Image files -> numpy arrays, one modality at a time.

Loading (`load_image`) keeps the file's bit depth: 8-bit files give uint8, 16-bit files (thermal
PNG / TIFF) give uint16. Nothing is squeezed to 8 bits. The one place pixels become floats is
`to_float`, with a fixed, documented scaling:

    uint8  -> value / 255
    uint16 -> value / 65535      (a 16-bit value of 40000 becomes 0.6104, never clipped)

so a thermal camera's full 16-bit range reaches the model. (Raw radiometric data often fills only
a slice of 0..65535; the detector's per-channel input statistics, not this loader, are the place
to stretch it.)

Channel order: OpenCV decodes colour files as BGR. `load_image(path, 3)` returns RGB order
(channel 0 = red), which is what torchvision and ultralytics weights expect. `load_image(path, 1)`
returns one grey channel; a colour file (e.g. an LWIR image saved as a 3-channel JPEG) is
converted with OpenCV's BGR->grey weights. An alpha channel is dropped.

EXIF orientation is applied, as PIL's `ImageOps.exif_transpose` and ultralytics do: a photo
stored sideways with orientation 6 is loaded upright, as every viewer and labelling tool shows
it, because that is the image its boxes were drawn on. `image_size` gives the size as displayed
(width and height swapped for orientations 5 to 8), so readers, `data check` and training agree.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from detector.errors import DatasetError

# channels each modality is loaded with (see DESIGN.md: "rgb" is RGB order, "lwir" is thermal)
MODALITY_CHANNELS = {"rgb": 3, "lwir": 1}

# full-scale value of each integer dtype: to_float divides by it
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_ORIENTATION_TAG = 0x0112
# mean difference between colour channels (fraction of full scale) above which a file holds colour
# rather than grey stored as three channels (JPEG chroma rounding stays far below it)
_COLOUR_SPREAD = 2.0 / 255


def modality_channels(modality: str) -> int:
    """Channels a modality is loaded with; DatasetError naming the valid modalities."""
    try:
        return MODALITY_CHANNELS[modality]
    except KeyError:
        raise DatasetError(f"unknown modality {modality!r}; expected one of "
                           f"{', '.join(MODALITY_CHANNELS)}") from None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened PIL image; 1 (as stored) when it has none."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError):  # a broken EXIF block is not worth failing for
        return 1
    return value if value in range(1, 9) else 1


def open_image(source) -> Image.Image:
    """PIL's own `Image.open` (a path or a binary file object). Importing ultralytics replaces
    `PIL.Image.open` with a wrapper that, on a file PIL cannot identify, tries to pip-install
    pi-heif and raises ModuleNotFoundError where it cannot: a corrupt image must be
    UnidentifiedImageError, and reading data must never install anything."""
    opener = Image.open
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and opener is getattr(patches, "image_open", None):
        opener = patches._image_open  # the PIL function the wrapper keeps
    return opener(source)


def image_size(path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header alone.

    Raises OSError (unreadable file) or PIL.UnidentifiedImageError (not an image)."""
    with open_image(path) as image:
        width, height = image.size
        return (height, width) if exif_orientation(image) >= 5 else (width, height)


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """[H,W,C] pixels as stored -> as displayed, for EXIF orientation 1..8 (exif_transpose's
    mapping: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 anticlockwise)."""
    if orientation in (5, 6, 7, 8):
        image = image.transpose(1, 0, 2)  # 5; 6, 7, 8 are 5 followed by a flip
        image = {5: image, 6: image[:, ::-1], 7: image[::-1, ::-1], 8: image[::-1]}[orientation]
    else:
        image = {1: image, 2: image[:, ::-1], 3: image[::-1, ::-1], 4: image[::-1]}[orientation]
    return np.ascontiguousarray(image)


def _orientation_of(raw: bytes) -> int:
    try:
        with open_image(io.BytesIO(raw)) as image:
            return exif_orientation(image)
    except (OSError, UnidentifiedImageError, ValueError):
        return 1  # OpenCV reads formats PIL does not; they carry no orientation PIL could read


def _decode(path: Path) -> np.ndarray:
    """The file's pixels as OpenCV decodes them (BGR / BGRA / grey; uint8 or uint16)."""
    try:
        # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths on
        # every platform, and returns None without saying why.
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the image file: {e}") from e
    if len(data) == 0:
        raise DatasetError(f"{path}: the image file is empty")
    raw = data.tobytes()
    # libjpeg decodes a truncated JPEG with a warning and grey fill; a missing end-of-image
    # marker near the end of the file is how such a file shows (trailing padding is allowed).
    if raw[:2] == _JPEG_START and _JPEG_END not in raw[-4096:]:
        raise DatasetError(f"{path}: corrupt image: truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED: 16 bits kept, EXIF ignored
    if image is None:
        raise DatasetError(f"{path}: corrupt image: OpenCV cannot decode it (expected a PNG, "
                           "JPEG, TIFF or BMP image)")
    return image, _orientation_of(raw)


def decode_image(path) -> np.ndarray:
    """The file as [H,W,C] pixels as displayed (EXIF orientation applied), C 1 (grey) or 3 (BGR,
    alpha dropped), uint8 or uint16: what training decodes, before the channel conversion.
    Raises DatasetError naming the file when it cannot be read or decoded, or holds samples
    that are neither 8- nor 16-bit unsigned integers (a float TIFF)."""
    path = Path(path)
    image, orientation = _decode(path)
    if image.dtype not in _FULL_SCALE:
        raise DatasetError(f"{path}: expected 8- or 16-bit unsigned pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DatasetError(f"{path}: expected a grey, colour or colour+alpha image, got an "
                           f"array of shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return _orient(image, orientation) if orientation != 1 else image


def is_colour(image: np.ndarray) -> bool:
    """Whether a `decode_image` array holds colour, not grey stored as three equal channels."""
    if image.shape[2] != 3:
        return False
    pixels = image[::4, ::4].astype(np.float32)  # a sample is plenty to tell colour from grey
    spread = (np.abs(pixels[..., 0] - pixels[..., 1]).mean()
              + np.abs(pixels[..., 1] - pixels[..., 2]).mean()) / 2
    return spread > _COLOUR_SPREAD * _FULL_SCALE[image.dtype]


def load_image(path, channels: int) -> np.ndarray:
    """Load an image file as an [H,W,channels] array, uint8 or uint16 as stored, as displayed
    (EXIF orientation applied).

    - channels=3: RGB order (OpenCV's BGR is swapped); a grey file is replicated to 3 channels
    - channels=1: one grey channel; a colour file is converted to grey
    - an alpha channel is dropped
    Raises DatasetError as `decode_image` does.
    """
    if channels not in (1, 3):
        raise ValueError(f"load_image: channels must be 1 or 3, got {channels}")
    image = decode_image(path)
    if channels == 3:
        if image.shape[2] == 1:
            return np.ascontiguousarray(np.repeat(image, 3, axis=2))
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    return np.ascontiguousarray(image)


def load_modality(path, modality: str) -> np.ndarray:
    """`load_image` with the channel count of a modality ("rgb": 3, "lwir": 1)."""
    return load_image(path, modality_channels(modality))


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 / 255 or uint16 / 65535 -> float32 in 0..1 (same shape). Float input is returned
    as float32 unchanged (it is taken to be 0..1 already)."""
    if image.dtype in _FULL_SCALE:
        return image.astype(np.float32) / np.float32(_FULL_SCALE[image.dtype])
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ValueError(f"to_float: expected uint8, uint16 or float pixels, got {image.dtype}")
