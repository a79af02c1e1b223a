"""detector.boxes: conversions round-trip (property tests) and the checks readers rely on."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detector import boxes as B

coords = st.floats(min_value=-2000, max_value=2000, allow_nan=False, width=32)
sizes = st.floats(min_value=0.125, max_value=2000, allow_nan=False, width=32)


@st.composite
def xyxy_boxes(draw, max_boxes=20):
    n = draw(st.integers(0, max_boxes))
    corners = draw(arrays(np.float64, (n, 2), elements=coords))
    wh = draw(arrays(np.float64, (n, 2), elements=sizes))
    return np.concatenate([corners, corners + wh], axis=1).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes())
def test_xywh_round_trip(boxes):
    back = B.xywh_to_xyxy(B.xyxy_to_xywh(boxes))
    assert back.dtype == np.float32 and back.shape == boxes.shape
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes())
def test_cxcywh_round_trip(boxes):
    back = B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes(), sizes, sizes)
def test_normalize_round_trip(boxes, width, height):
    back = B.denormalize_xyxy(B.normalize_xyxy(boxes, width, height), width, height)
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-3)


@settings(max_examples=100, deadline=None)
@given(xyxy_boxes())
def test_torch_and_numpy_agree(boxes):
    tensor = torch.from_numpy(boxes)
    for convert in (B.xyxy_to_xywh, B.xyxy_to_cxcywh, B.cxcywh_to_xyxy, B.xywh_to_xyxy):
        out = convert(tensor)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), convert(boxes), atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes(), sizes, sizes)
def test_clip_stays_inside_and_is_idempotent(boxes, width, height):
    clipped = B.clip_xyxy(boxes, width, height)
    assert not B.outside_image_xyxy(clipped, width, height, tolerance=1e-3).any()
    np.testing.assert_array_equal(B.clip_xyxy(clipped, width, height), clipped)
    inside = ~B.outside_image_xyxy(boxes, width, height, tolerance=0)
    np.testing.assert_array_equal(clipped[inside], boxes[inside])


def test_degenerate_and_areas():
    boxes = np.array([[0, 0, 10, 5], [3, 3, 3, 8], [5, 5, 4, 9]], dtype=np.float32)
    assert B.degenerate_xyxy(boxes).tolist() == [False, True, True]
    assert B.areas_xyxy(boxes).tolist() == [50.0, 0.0, 0.0]


def test_outside_image_uses_tolerance():
    boxes = np.array([[-0.4, 0, 10, 10], [-0.6, 0, 10, 10], [0, 0, 100.6, 10]], dtype=np.float32)
    assert B.outside_image_xyxy(boxes, 100, 100).tolist() == [False, True, True]


def test_fixed_value_conversions():
    coco = np.array([[10, 20, 30, 40]], dtype=np.float32)  # x, y, w, h
    np.testing.assert_array_equal(B.xywh_to_xyxy(coco), [[10, 20, 40, 60]])
    np.testing.assert_array_equal(B.xyxy_to_xywh(np.array([[10, 20, 40, 60]], np.float32)),
                                  [[10, 20, 30, 40]])
    np.testing.assert_array_equal(B.cxcywh_to_xyxy(np.array([[25, 40, 30, 40]], np.float32)),
                                  [[10, 20, 40, 60]])
    np.testing.assert_array_equal(B.xyxy_to_cxcywh(np.array([[10, 20, 40, 60]], np.float32)),
                                  [[25, 40, 30, 40]])
    np.testing.assert_allclose(B.normalize_xyxy(np.array([[10, 20, 40, 60]], np.float32), 100, 200),
                               [[0.1, 0.1, 0.4, 0.3]])
