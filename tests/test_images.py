"""detector.data.images: bit depth, channel order, grey/alpha handling, scaling, broken files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.data.images import MODALITY_CHANNELS, load_image, load_modality, to_float
from detector.errors import DatasetError


def test_red_written_by_opencv_as_bgr_comes_out_in_channel_0(tmp_path):
    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[2, 3] = (0, 0, 255)  # OpenCV's order: blue, green, red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), bgr)
    image = load_image(path, 3)
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[2, 3].tolist() == [255, 0, 0]
    assert image.sum() == 255


def test_16_bit_value_survives_at_full_range(tmp_path):
    grey = np.full((5, 7), 1000, np.uint16)
    grey[1, 2] = 40000
    grey[3, 4] = 65535
    path = tmp_path / "thermal.png"
    cv2.imwrite(str(path), grey)
    image = load_image(path, 1)
    assert image.dtype == np.uint16 and image.shape == (5, 7, 1)
    assert image[1, 2, 0] == 40000
    scaled = to_float(image)
    assert scaled.dtype == np.float32
    assert scaled[1, 2, 0] == pytest.approx(40000 / 65535, abs=1e-7)
    assert scaled[3, 4, 0] == pytest.approx(1.0)
    assert scaled[0, 0, 0] == pytest.approx(1000 / 65535, abs=1e-7)
    # not squeezed through 8 bits (which would give 156 / 255 = 0.6118)
    assert abs(scaled[1, 2, 0] - round(40000 / 257) / 255) > 1e-3


def test_16_bit_colour_keeps_depth_and_rgb_order(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint16)
    bgr[0, 0] = (100, 20000, 50000)
    path = tmp_path / "colour16.png"
    cv2.imwrite(str(path), bgr)
    image = load_image(path, 3)
    assert image.dtype == np.uint16
    assert image[0, 0].tolist() == [50000, 20000, 100]


def test_8_bit_scaling():
    image = np.array([[[0], [51], [255]]], np.uint8)
    assert to_float(image).ravel().tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_grey_file_gives_one_channel_or_three_equal_channels(tmp_path):
    grey = (np.arange(20, dtype=np.uint8) * 10).reshape(4, 5)
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    one = load_image(path, 1)
    three = load_image(path, 3)
    assert one.shape == (4, 5, 1) and np.array_equal(one[:, :, 0], grey)
    assert three.shape == (4, 5, 3)
    for channel in range(3):
        assert np.array_equal(three[:, :, channel], grey)


def test_colour_file_loaded_as_one_channel_is_converted_to_grey(tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    path = tmp_path / "ir_as_colour.jpg"
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])
    decoded = cv2.imread(str(path))
    image = load_modality(path, "lwir")
    assert image.shape == (6, 6, 1)
    assert np.array_equal(image[:, :, 0], cv2.cvtColor(decoded, cv2.COLOR_BGR2GRAY))


def test_alpha_channel_is_dropped(tmp_path):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[1, 1] = (255, 0, 0, 128)  # blue, half transparent
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), bgra)
    image = load_image(path, 3)
    assert image.shape == (3, 3, 3)
    assert image[1, 1].tolist() == [0, 0, 255]


def test_modality_channels_and_unknown_modality(tmp_path):
    assert MODALITY_CHANNELS == {"rgb": 3, "lwir": 1}
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros((2, 2, 3), np.uint8))
    assert load_modality(path, "rgb").shape == (2, 2, 3)
    with pytest.raises(DatasetError, match="unknown modality 'thermal'; expected one of rgb, lwir"):
        load_modality(path, "thermal")


def test_broken_files_are_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    with pytest.raises(DatasetError, match=f"{garbage}: corrupt image"):
        load_image(garbage, 3)

    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert load_image(good, 3).shape == (64, 64, 3)
    with pytest.raises(DatasetError, match=f"{truncated}: corrupt image: truncated JPEG"):
        load_image(truncated, 3)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=f"{empty}: the image file is empty"):
        load_image(empty, 1)

    missing = tmp_path / "missing.png"
    with pytest.raises(DatasetError, match=f"{missing}: cannot read the image file"):
        load_image(missing, 1)


def test_float_tiff_is_refused(tmp_path):
    path = tmp_path / "kelvin.tiff"
    cv2.imwrite(str(path), np.full((4, 4), 300.5, np.float32))
    with pytest.raises(DatasetError, match="expected 8- or 16-bit unsigned pixels, got float32"):
        load_image(path, 1)
