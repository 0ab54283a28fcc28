"""Image message <-> BGR conversion: every supported encoding against OpenCV's own conversions, and every
kind of bad message refused with a reason before its data is touched."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from emotion_recognition_ros.ros.image_conversion import (ImageConversionError, bgr_to_image_msg,
                                                      compressed_msg_to_bgr, image_msg_to_array, image_msg_to_bgr)

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def make_msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image whose rows are padded by `pad` bytes (step > row), as some drivers send."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8) if pixels.dtype == np.uint8 else \
        pixels.astype(">u2" if bigendian else "<u2").reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 7, np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=int(bigendian),
                step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding,pixels,expected", [
    ("bgr8", BGR, BGR),
    ("8UC3", BGR, BGR),
    ("rgb8", BGR[:, :, ::-1], BGR),
    ("bgra8", cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA), BGR),
    ("rgba8", cv2.cvtColor(BGR, cv2.COLOR_BGR2RGBA), BGR),
    ("mono8", BGR[:, :, 1], cv2.cvtColor(BGR[:, :, 1], cv2.COLOR_GRAY2BGR)),
])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_round_to_bgr(encoding, pixels, expected, pad):
    out = image_msg_to_bgr(make_msg(np.ascontiguousarray(pixels), encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_the_high_byte_in_either_byte_order(bigendian):
    values = RNG.integers(0, 65536, (4, 6), dtype=np.uint16)
    out = image_msg_to_bgr(make_msg(values, "mono16", pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out[:, :, 0], (values >> 8).astype(np.uint8))
    np.testing.assert_array_equal(image_msg_to_array(make_msg(values, "mono16", bigendian=bigendian)), values)


@pytest.mark.parametrize("encoding,code", [("yuv422", cv2.COLOR_YUV2BGR_UYVY), ("uyvy", cv2.COLOR_YUV2BGR_UYVY),
                                           ("yuv422_yuy2", cv2.COLOR_YUV2BGR_YUYV), ("yuyv", cv2.COLOR_YUV2BGR_YUYV)])
def test_packed_yuv422_matches_opencv(encoding, code):
    packed = RNG.integers(16, 240, (6, 8, 2), dtype=np.uint8)
    out = image_msg_to_bgr(make_msg(packed, encoding, pad=4))
    np.testing.assert_array_equal(out, cv2.cvtColor(packed, code))


def test_yuyv_and_uyvy_orders_differ_on_real_colours():
    bgr = np.zeros((2, 4, 3), np.uint8)
    bgr[:] = (20, 200, 60)  # green: Y high, U and V low, so swapping Y and chroma bytes changes the colour
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    yuyv = np.stack([yuv[:, :, 0], np.where(np.arange(4) % 2 == 0, yuv[:, :, 1], yuv[:, :, 2])], axis=2)
    good = image_msg_to_bgr(make_msg(np.ascontiguousarray(yuyv), "yuyv"))
    wrong = image_msg_to_bgr(make_msg(np.ascontiguousarray(yuyv), "uyvy"))
    assert np.abs(good.astype(int) - bgr).max() <= 30  # BGR2YUV is full-range, YUYV decoding video-range
    assert np.abs(wrong.astype(int) - bgr).max() > 50


def test_bgr8_without_padding_is_a_view_of_the_message_data():
    msg = make_msg(BGR, "bgr8")
    out = image_msg_to_bgr(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: setattr(m, "encoding", "32FC1"), "unsupported encoding '32FC1'"),
    (lambda m: setattr(m, "encoding", "16UC1"), "unsupported encoding '16UC1'"),
    (lambda m: setattr(m, "encoding", ""), "unsupported encoding ''"),
    (lambda m: setattr(m, "data", m.data[:-1]), "truncated data"),
    (lambda m: setattr(m, "data", bytes(m.data) + b"x"), "oversized data"),
    (lambda m: setattr(m, "data", b""), "truncated data"),
    (lambda m: setattr(m, "step", 10), "step 10 is shorter than one row"),
    (lambda m: setattr(m, "step", 30), "truncated data"),  # a step that lies about the row length
    (lambda m: setattr(m, "height", 7), "truncated data"),  # a height that lies
    (lambda m: setattr(m, "width", 0), "empty image (0x6)"),
    (lambda m: setattr(m, "height", 0), "empty image (8x0)"),
    (lambda m: (setattr(m, "width", 9000), setattr(m, "step", 27000)), "exceeds the maximum of 8192"),
])
def test_bad_messages_are_refused_with_a_reason(mutate, reason):
    msg = make_msg(BGR, "bgr8")
    mutate(msg)
    with pytest.raises(ImageConversionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        image_msg_to_bgr(msg)


def test_odd_width_yuv_and_misaligned_mono16_step_are_refused():
    msg = make_msg(RNG.integers(0, 255, (2, 4, 2), dtype=np.uint8), "yuyv")
    msg.width = 3
    with pytest.raises(ImageConversionError, match="even width"):
        image_msg_to_bgr(msg)
    msg = make_msg(np.zeros((2, 4), np.uint16), "mono16", pad=1)
    with pytest.raises(ImageConversionError, match="not a multiple"):
        image_msg_to_bgr(msg)


def test_the_size_limit_is_a_parameter():
    msg = make_msg(BGR, "bgr8")
    with pytest.raises(ImageConversionError, match="maximum of 7 pixels"):
        image_msg_to_bgr(msg, max_size=7)
    assert image_msg_to_bgr(msg, max_size=8).shape == (6, 8, 3)


def test_compressed_images_decode_and_corrupt_ones_are_refused():
    ok, jpeg = cv2.imencode(".png", BGR)
    msg = CompressedImage(format="png")
    msg.data = jpeg.tobytes()
    np.testing.assert_array_equal(compressed_msg_to_bgr(msg), BGR)
    with pytest.raises(ImageConversionError, match="maximum of 4"):
        compressed_msg_to_bgr(msg, max_size=4)
    msg.data = jpeg.tobytes()[:40]
    with pytest.raises(ImageConversionError, match="corrupt or unknown compressed image"):
        compressed_msg_to_bgr(msg)
    msg.data = b""
    with pytest.raises(ImageConversionError, match="empty compressed image"):
        compressed_msg_to_bgr(msg)


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "mono8"])
def test_outgoing_messages_round_trip(encoding):
    msg = bgr_to_image_msg(BGR, encoding=encoding)
    assert (msg.width, msg.height, msg.encoding) == (8, 6, encoding)
    back = image_msg_to_bgr(msg)
    expected = BGR if encoding != "mono8" else cv2.cvtColor(cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(back, expected)
    with pytest.raises(ImageConversionError, match="cannot publish encoding 'yuyv'"):
        bgr_to_image_msg(BGR, encoding="yuyv")


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 12), width=st.integers(1, 12), pad=st.integers(0, 9),
       encoding=st.sampled_from(["bgr8", "rgb8", "bgra8", "rgba8", "mono8"]), cut=st.integers(-3, 3))
def test_any_size_and_padding_converts_or_fails_cleanly(height, width, pad, encoding, cut):
    channels = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1}[encoding]
    pixels = RNG.integers(0, 256, (height, width, channels) if channels > 1 else (height, width), dtype=np.uint8)
    msg = make_msg(pixels, encoding, pad)
    if cut:
        msg.data = bytes(msg.data)[:cut] if cut < 0 else bytes(msg.data) + bytes(cut)
        with pytest.raises(ImageConversionError):
            image_msg_to_bgr(msg)
    else:
        assert image_msg_to_bgr(msg).shape == (height, width, 3)
