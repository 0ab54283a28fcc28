"""Fuzzing the entry points that touch untrusted bytes: image conversion and face preprocessing.

Every input either converts to an image of exactly the promised shape or raises the module's own error with a
reason; nothing else escapes (no IndexError, no cv2.error, no hang, no silently wrong shape).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion_recognition_ros.core.classes import CKPLUS6
from emotion_recognition_ros.ros.image_conversion import (ENCODINGS, ImageConversionError, compressed_msg_to_bgr,
                                                      image_msg_to_bgr)
from emotion_recognition_ros.core.model_io import ModelMetadata
from emotion_recognition_ros.core.preprocess import crop_face, faces_to_batch

sensor_msgs = pytest.importorskip("sensor_msgs.msg")
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
ENCODING_NAMES = sorted(ENCODINGS) + ["32FC1", "16UC1", "bayer_rggb8", "", "BGR8", "jpeg"]
MAX_SIDE = 64  # the node's max_image_size parameter, scaled down so fuzzing stays fast


def _image(encoding: str, width: int, height: int, step: int, data: bytes, bigendian: bool):
    msg = sensor_msgs.Image(encoding=encoding, width=width, height=height, step=step, is_bigendian=bigendian)
    msg.data = data
    return msg


@st.composite
def image_messages(draw):
    """Mostly near-valid messages (where bugs hide), with lies in size, step, length and encoding."""
    encoding = draw(st.sampled_from(ENCODING_NAMES))
    spec = ENCODINGS.get(encoding)
    width = draw(st.integers(-2, MAX_SIDE + 8))
    height = draw(st.integers(-2, MAX_SIDE + 8))
    bytes_per_px = spec.channels * spec.itemsize if spec else draw(st.integers(1, 4))
    row = max(width, 0) * bytes_per_px
    step = row + draw(st.sampled_from([0, 0, 0, 1, 3, 16, -1, -row]))
    n_bytes = max(step, 0) * max(height, 0) + draw(st.sampled_from([0, 0, 0, 1, -1, -7, 100]))
    data = draw(st.binary(min_size=max(n_bytes, 0), max_size=max(n_bytes, 0)))
    return _image(encoding, max(width, 0), max(height, 0), max(step, 0), data, draw(st.booleans()))


@FUZZ
@given(image_messages())
def test_image_conversion_returns_the_promised_shape_or_a_reason(msg):
    start = time.perf_counter()
    try:
        bgr = image_msg_to_bgr(msg, max_size=MAX_SIDE)
    except ImageConversionError as exc:
        assert str(exc), "errors must carry a reason"
        return
    finally:
        assert time.perf_counter() - start < 1.0
    assert bgr.dtype == np.uint8 and bgr.shape == (msg.height, msg.width, 3)
    assert 0 < msg.width <= MAX_SIDE and 0 < msg.height <= MAX_SIDE
    assert len(msg.data) == msg.step * msg.height  # anything else must have been refused


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8"]))
def test_compressed_conversion_never_crashes(data, fmt):
    msg = sensor_msgs.CompressedImage(format=fmt)
    msg.data = data
    try:
        bgr = compressed_msg_to_bgr(msg, max_size=MAX_SIDE)
    except ImageConversionError as exc:
        assert str(exc)
        return
    assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3


def test_real_compressed_images_decode_and_oversized_ones_are_refused():
    import cv2

    frame = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    for ext, fmt in ((".jpg", "jpeg"), (".png", "png")):
        msg = sensor_msgs.CompressedImage(format=fmt)
        msg.data = cv2.imencode(ext, frame)[1].tobytes()
        assert compressed_msg_to_bgr(msg).shape == (40, 60, 3)
        with pytest.raises(ImageConversionError, match="exceeds the maximum"):
            compressed_msg_to_bgr(msg, max_size=32)


META = ModelMetadata("tf_efficientnet_lite0", list(CKPLUS6), input_size=32, source_size=16)


@settings(max_examples=200, deadline=2000, derandomize=True)
@given(fw=st.integers(1, 80), fh=st.integers(1, 80), channels=st.sampled_from([None, 1, 3, 4]),
       box=st.tuples(st.floats(-100, 150), st.floats(-100, 150), st.floats(0, 120), st.floats(0, 120)),
       margin=st.floats(0, 1), square=st.booleans())
def test_crop_and_preprocess_give_the_network_shape_or_a_reason(fw, fh, channels, box, margin, square):
    shape = (fh, fw) if channels is None else (fh, fw, channels)
    frame = np.random.default_rng(fw * 100 + fh).integers(0, 256, shape, np.uint8)
    try:
        crop = crop_face(frame, box, margin, square)
    except ValueError as exc:
        assert "box" in str(exc)
        return
    assert crop.size > 0 and crop.shape[2:] == frame.shape[2:]
    if square:
        assert abs(crop.shape[0] - crop.shape[1]) <= 1
    batch = faces_to_batch([crop, crop], META)
    assert tuple(batch.shape) == (2, 3, 32, 32) and batch.isfinite().all()
    assert float(batch.min()) >= -1.0 - 1e-6 and float(batch.max()) <= 1.0 + 1e-6


def test_preprocess_refuses_images_it_cannot_read():
    with pytest.raises(ValueError, match="expected a gray, BGR or BGRA image"):
        faces_to_batch([np.zeros((10, 10, 2), np.uint8)], META)
    with pytest.raises(ValueError, match="empty face crop"):
        faces_to_batch([np.zeros((0, 10), np.uint8)], META)
