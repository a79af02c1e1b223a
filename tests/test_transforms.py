"""detector.data.transforms: one geometry for every modality, photometric per modality, letterbox."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector.data.transforms import (DEFAULT_TRAIN_AUGMENT, PAD_VALUE, build_transforms,
                                      letterbox)
from detector.errors import ConfigError

HEIGHT, WIDTH = 40, 60


def marker_images(x: int = 5, y: int = 7):
    """rgb (uint8) and lwir (uint16) of HEIGHT x WIDTH, each with one bright marker pixel."""
    rgb = np.full((HEIGHT, WIDTH, 3), 30, np.uint8)
    rgb[y, x] = (255, 10, 10)
    lwir = np.full((HEIGHT, WIDTH, 1), 20000, np.uint16)
    lwir[y, x] = 40000
    return {"rgb": rgb, "lwir": lwir}


def marker_position(image: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(np.argmax(image[:, :, 0]), image.shape[:2])
    return int(x), int(y)


BOX = np.array([[2, 3, 12, 15]], np.float32)
LABELS = np.array([4])


def test_horizontal_flip_moves_both_modalities_and_the_boxes():
    transform = build_transforms([{"name": "HorizontalFlip", "p": 1.0}], None, ["rgb", "lwir"])
    out = transform(marker_images(), BOX, LABELS)
    assert marker_position(out["images"]["rgb"]) == (WIDTH - 1 - 5, 7)
    assert marker_position(out["images"]["lwir"]) == (WIDTH - 1 - 5, 7)
    np.testing.assert_allclose(out["boxes"], [[WIDTH - 12, 3, WIDTH - 2, 15]], atol=1e-3)
    assert out["labels"].tolist() == [4] and out["labels"].dtype == np.int64
    # the 16-bit value arrives as value / 65535, not through 8 bits
    assert out["images"]["lwir"].max() == pytest.approx(40000 / 65535, abs=1e-7)
    assert out["scale"] == (1.0, 1.0) and out["pad"] == (0.0, 0.0)


def test_crop_moves_both_modalities_boxes_and_ignore_regions():
    spec = [{"name": "Crop", "x_min": 1, "y_min": 2, "x_max": 50, "y_max": 35, "p": 1.0}]
    transform = build_transforms(spec, None, ["rgb", "lwir"])
    ignore = np.array([[20, 20, 30, 30]], np.float32)
    out = transform(marker_images(), BOX, LABELS, ignore)
    assert out["images"]["rgb"].shape == (33, 49, 3)
    assert out["images"]["lwir"].shape == (33, 49, 1)
    assert marker_position(out["images"]["rgb"]) == (4, 5)
    assert marker_position(out["images"]["lwir"]) == (4, 5)
    np.testing.assert_allclose(out["boxes"], [[1, 1, 11, 13]], atol=1e-3)
    np.testing.assert_allclose(out["ignore"], [[19, 18, 29, 28]], atol=1e-3)


def test_random_affine_draws_one_geometry_for_all_modalities():
    rng = np.random.default_rng(0)
    pattern = rng.random((HEIGHT, WIDTH)).astype(np.float32)
    images = {"rgb": np.repeat(pattern[:, :, None], 3, axis=2), "lwir": pattern[:, :, None]}
    spec = [{"name": "Affine", "rotate": [-30, 30], "translate_px": [-8, 8], "p": 1.0}]
    transform = build_transforms(spec, None, ["rgb", "lwir"])
    for _ in range(3):
        out = transform(images, BOX, LABELS)
        moved = out["images"]
        assert not np.allclose(moved["lwir"][:, :, 0], pattern)
        np.testing.assert_array_equal(moved["rgb"][:, :, 0], moved["lwir"][:, :, 0])


def test_boxes_mostly_cropped_away_are_dropped():
    spec = [{"name": "Crop", "x_min": 10, "y_min": 0, "x_max": 60, "y_max": 40, "p": 1.0}]
    transform = build_transforms(spec, None, ["rgb"], min_visibility=0.5)
    boxes = np.array([[2, 3, 12, 15], [20, 5, 30, 15]], np.float32)  # first keeps 20 % of its area
    out = transform({"rgb": marker_images()["rgb"]}, boxes, np.array([1, 2]))
    np.testing.assert_allclose(out["boxes"], [[10, 5, 20, 15]], atol=1e-3)
    assert out["labels"].tolist() == [2]


@pytest.mark.parametrize("touched, untouched, shift, scale, background", [
    ("rgb", "lwir", 0.3, 255, 30), ("lwir", "rgb", 0.2, 65535, 20000)])
def test_photometric_transform_touches_only_its_modality(touched, untouched, shift, scale,
                                                         background):
    spec = [{"name": "RandomBrightnessContrast", "brightness_limit": [shift, shift],
             "contrast_limit": [0, 0], "p": 1.0, "modality": touched}]
    images = marker_images()
    out = build_transforms(spec, None, ["rgb", "lwir"])(images, BOX, LABELS)
    other_scale = 65535 if untouched == "lwir" else 255
    np.testing.assert_array_equal(out["images"][untouched],
                                  images[untouched] / np.float32(other_scale))
    assert out["images"][touched][0, 0, 0] == pytest.approx(background / scale + shift, abs=1e-5)


def test_photometric_default_modality_is_rgb_else_the_first():
    spec = [{"RandomBrightnessContrast": {"brightness_limit": [0.2, 0.2],
                                          "contrast_limit": [0, 0], "p": 1.0}}]
    transform = build_transforms(spec, None)
    images = marker_images()
    out = transform(images, BOX, LABELS)
    np.testing.assert_array_equal(out["images"]["lwir"], images["lwir"] / np.float32(65535))
    assert not np.allclose(out["images"]["rgb"], images["rgb"] / 255)
    lwir_only = transform({"lwir": images["lwir"]}, BOX, LABELS)
    assert lwir_only["images"]["lwir"][0, 0, 0] == pytest.approx(20000 / 65535 + 0.2, abs=1e-5)


def test_letterbox_scale_and_pad_map_boxes_back_to_the_original():
    image = np.zeros((48, 80, 3), np.float32)
    image[10:20, 30:40] = 1.0
    box = np.array([[30, 10, 40, 20]], np.float32)
    out = build_transforms([], 64, ["rgb"])({"rgb": image}, box, [0])
    letterboxed = out["images"]["rgb"]
    assert letterboxed.shape == (64, 64, 3)
    (sx, sy), (px, py) = out["scale"], out["pad"]
    assert sx == pytest.approx(0.8) and sy == pytest.approx(38 / 48)
    assert (px, py) == (0.0, 13.0)
    np.testing.assert_allclose(out["boxes"], [[24, 10 * sy + 13, 32, 20 * sy + 13]], atol=1e-4)
    back = (out["boxes"] - [px, py, px, py]) / [sx, sy, sx, sy]
    np.testing.assert_allclose(back, box, atol=1e-4)
    # padding rows are PAD_VALUE, the box region holds the bright square
    assert np.all(letterboxed[:13] == np.float32(PAD_VALUE))
    assert np.all(letterboxed[13 + 38:] == np.float32(PAD_VALUE))
    x0, y0, x1, y1 = out["boxes"][0]
    assert letterboxed[int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2].min() > 0.99


def test_letterbox_of_two_modalities_keeps_their_channels():
    images = {"rgb": np.zeros((30, 20, 3), np.float32), "lwir": np.ones((30, 20, 1), np.float32)}
    out, scale, pad = letterbox(images, 60)
    assert out["rgb"].shape == (60, 60, 3) and out["lwir"].shape == (60, 60, 1)
    assert scale == (2.0, 2.0) and pad == (10.0, 0.0)
    assert out["lwir"][:, 10:50].min() == 1.0


def test_evaluation_transforms_do_not_augment():
    transform = build_transforms([{"name": "HorizontalFlip", "p": 1.0}], None, ["rgb", "lwir"],
                                 train=False)
    out = transform(marker_images(), BOX, LABELS)
    assert marker_position(out["images"]["rgb"]) == (5, 7)
    np.testing.assert_allclose(out["boxes"], BOX)


def test_same_torch_seed_gives_the_same_augmentation():
    spec = [{"name": "Affine", "rotate": [-30, 30], "p": 1.0}]
    images = {"rgb": np.random.default_rng(1).random((HEIGHT, WIDTH, 3)).astype(np.float32)}
    results = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        results.append(build_transforms(spec, None, ["rgb"])(images, BOX, LABELS)["images"]["rgb"])
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_default_augmentation_runs_on_every_modality_mix():
    images = marker_images()
    for modalities in (["rgb"], ["lwir"], ["rgb", "lwir"]):
        transform = build_transforms(None, 64, modalities)
        out = transform({m: images[m] for m in modalities}, BOX, LABELS)
        assert {m: out["images"][m].shape[:2] for m in modalities} == dict.fromkeys(modalities, (64, 64))
    names = [entry["name"] for entry in DEFAULT_TRAIN_AUGMENT]
    assert "HorizontalFlip" in names


def test_bad_specs_are_config_errors():
    with pytest.raises(ConfigError, match=r"augment\[1\]: unknown transform 'HorizontalFlp'; "
                                          r"did you mean 'HorizontalFlip'\?"):
        build_transforms(["VerticalFlip", {"name": "HorizontalFlp", "p": 0.5}])
    with pytest.raises(ConfigError, match=r"augment\[0\]: Affine has no argument 'scael'; "
                                          r"did you mean 'scale'\?"):
        build_transforms([{"name": "Affine", "scael": [0.5, 1.5]}])
    with pytest.raises(ConfigError, match=r"augment\[0\]: bad arguments for Affine"):
        build_transforms([{"name": "Affine", "scale": "big"}])
    with pytest.raises(ConfigError, match="unknown modality 'ir'; expected one of rgb, lwir"):
        build_transforms([{"name": "GaussianBlur", "modality": "ir"}])
    with pytest.raises(ConfigError, match="HorizontalFlip is geometric and moves every modality"):
        build_transforms([{"name": "HorizontalFlip", "modality": "rgb"}])
    with pytest.raises(ConfigError, match="HueSaturationValue cannot run on the 1-channel lwir"):
        build_transforms([{"name": "HueSaturationValue", "modality": "lwir"}], None, ["rgb", "lwir"])
    with pytest.raises(ConfigError, match=r"ToRGB turns the 1-channel lwir image \(64, 64, 1\) "
                                          r"into \(64, 64, 3\)"):
        build_transforms([{"name": "ToRGB", "p": 0.1, "modality": "lwir"}], None, ["lwir"])
    with pytest.raises(ConfigError, match="expected a transform name or a mapping"):
        build_transforms([3])
    with pytest.raises(ConfigError, match="image_size: expected a positive integer"):
        build_transforms([], image_size=0)


def test_8_bit_transform_on_lwir_warns_about_16_bit_loss():
    with pytest.warns(UserWarning, match=r"augment\[0\]: CLAHE works in 8 bits"):
        build_transforms([{"name": "CLAHE", "modality": "lwir"}], None, ["lwir"])


@pytest.mark.parametrize("spec", [
    [{"name": "HorizontalFlip", "p": 1.0}],
    [{"name": "Affine", "scale": [0.8, 1.2], "translate_percent": [-0.1, 0.1], "p": 1.0},
     {"name": "RandomBrightnessContrast", "brightness_limit": 0.2, "contrast_limit": 0.2, "p": 1.0}],
])
def test_8_bit_data_is_augmented_in_uint8_with_the_same_result_as_in_float(spec):
    """8-bit images stay uint8 inside (fast paths); the output matches float input to 8-bit
    precision and is float32 0..1 either way."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    boxes, labels = np.array([[10, 20, 60, 70]], np.float32), np.array([1])
    outputs = []
    for pixels in (image, image.astype(np.float32) / 255):
        transform = build_transforms(spec, image_size=64)  # the same draws for both
        torch.manual_seed(3)
        outputs.append(transform({"rgb": pixels}, boxes, labels))
    fast, slow = outputs
    assert fast["images"]["rgb"].dtype == np.float32
    assert 0 <= fast["images"]["rgb"].min() and fast["images"]["rgb"].max() <= 1
    assert np.abs(fast["images"]["rgb"] - slow["images"]["rgb"]).mean() < 2 / 255
    np.testing.assert_allclose(fast["boxes"], slow["boxes"], atol=1e-4)
    assert fast["pad"] == slow["pad"]
