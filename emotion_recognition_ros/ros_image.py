"""sensor_msgs/Image <-> numpy without cv_bridge (not installable from PyPI).

Works on rclpy messages and on messages deserialised by `rosbags` alike: both expose height, width,
encoding, step, is_bigendian and data (bytes, array('B') or a numpy array).
"""
from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

# encoding -> (channels, dtype); the encodings cameras and this package publish.
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "bgr8": (3, np.dtype(np.uint8)),
    "rgb8": (3, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
}


class ImageDecodeError(ValueError):
    """An Image message that cannot be turned into an array; the message says why."""


def image_to_array(msg: Any) -> np.ndarray:
    """The message's pixels as an HxW or HxWxC array in its own encoding (no colour conversion)."""
    if msg.encoding not in ENCODINGS:
        raise ImageDecodeError(f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than one row of {width} {msg.encoding} pixels ({row_bytes})")
    data = np.frombuffer(memoryview(msg.data).cast("B") if not isinstance(msg.data, np.ndarray) else msg.data,
                         dtype=np.uint8)
    if data.size < step * height:
        raise ImageDecodeError(f"truncated image: {data.size} bytes for {width}x{height} {msg.encoding} "
                               f"with step {step} (need {step * height})")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = rows.copy().view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    pixels = pixels.astype(dtype, copy=False)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)


def image_to_bgr(msg: Any) -> np.ndarray:
    """The message as a uint8 BGR HxWx3 array, whatever its (supported) encoding."""
    pixels = image_to_array(msg)
    enc = msg.encoding
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    conversions = {"rgb8": cv2.COLOR_RGB2BGR, "bgra8": cv2.COLOR_BGRA2BGR, "rgba8": cv2.COLOR_RGBA2BGR}
    return cv2.cvtColor(pixels, conversions[enc]) if enc in conversions else pixels


def fill_image(msg: Any, bgr: np.ndarray, encoding: str = "bgr8") -> Any:
    """Fill an Image message (header untouched) from a uint8 BGR (or gray) array, converting to `encoding`."""
    if encoding not in ("bgr8", "rgb8", "mono8"):
        raise ValueError(f"cannot publish encoding '{encoding}' (use bgr8, rgb8 or mono8)")
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    if encoding == "rgb8":
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    elif encoding == "mono8":
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        pixels = bgr
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    # array('B') is what rclpy stores for uint8[]; building it from bytes is one memcpy, whereas
    # assigning bytes would make the generated setter copy element by element.
    msg.data = array.array("B", pixels.tobytes())
    return msg
