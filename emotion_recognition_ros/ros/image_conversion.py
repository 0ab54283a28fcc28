"""sensor_msgs/Image and CompressedImage <-> BGR numpy arrays, without cv_bridge.

The PyPI `cv-bridge` is ROS 1 code that breaks on numpy 2, so the node converts images itself. Every
message is validated (encoding, size, step, data length) *before* its bytes are touched, and any problem
raises `ImageConversionError` whose text says what is wrong, so the node can log it and carry on.

Encodings follow sensor_msgs/image_encodings.hpp and cv_bridge: `yuv422` is UYVY byte order (the historic
ROS name), `yuv422_yuy2`/`yuyv` is YUYV. Depth and float encodings (16UC1, 32FC1, ...) are refused:
a depth image holds no face to classify.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

DEFAULT_MAX_SIZE = 8192  # pixels per side


@dataclass(frozen=True)
class _Encoding:
    channels: int  # numpy channels of the raw array (2 for packed YUV 4:2:2)
    itemsize: int  # bytes per channel value
    to_bgr: int | None  # cv2 colour conversion to BGR (None: already BGR)


ENCODINGS: dict[str, _Encoding] = {
    "bgr8": _Encoding(3, 1, None),
    "8UC3": _Encoding(3, 1, None),
    "rgb8": _Encoding(3, 1, cv2.COLOR_RGB2BGR),
    "bgra8": _Encoding(4, 1, cv2.COLOR_BGRA2BGR),
    "8UC4": _Encoding(4, 1, cv2.COLOR_BGRA2BGR),
    "rgba8": _Encoding(4, 1, cv2.COLOR_RGBA2BGR),
    "mono8": _Encoding(1, 1, cv2.COLOR_GRAY2BGR),
    "8UC1": _Encoding(1, 1, cv2.COLOR_GRAY2BGR),
    "mono16": _Encoding(1, 2, cv2.COLOR_GRAY2BGR),
    "yuv422": _Encoding(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": _Encoding(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": _Encoding(2, 1, cv2.COLOR_YUV2BGR_YUYV),
    "yuyv": _Encoding(2, 1, cv2.COLOR_YUV2BGR_YUYV),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
OUTPUT_ENCODINGS = ("bgr8", "rgb8", "mono8")


class ImageConversionError(ValueError):
    """An image message that cannot be converted; str(error) is the reason, fit for a log line."""


def _check_size(width: int, height: int, max_size: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"empty image ({width}x{height})")
    if width > max_size or height > max_size:
        raise ImageConversionError(f"image {width}x{height} exceeds the maximum of {max_size} pixels per side "
                                   "(parameter max_image_size)")


def image_msg_to_array(msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
    """The message's pixels in their own encoding, as a view of msg.data where the layout allows.

    Returns HxW (mono), HxWx2 (packed YUV 4:2:2) or HxWxC, uint8 or uint16 (native byte order).
    """
    encoding = str(msg.encoding)
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ImageConversionError(f"unsupported encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(width, height, max_size)
    if spec.channels == 2 and width % 2:
        raise ImageConversionError(f"{encoding} needs an even width, got {width}")
    row_bytes = width * spec.channels * spec.itemsize
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is shorter than one row of {width} {encoding} pixels "
                                   f"({row_bytes} bytes)")
    if step % spec.itemsize:
        raise ImageConversionError(f"step {step} is not a multiple of the {spec.itemsize}-byte {encoding} sample")
    expected = step * height
    size = len(msg.data)
    if size != expected:
        kind = "truncated" if size < expected else "oversized"
        raise ImageConversionError(f"{kind} data: {size} bytes, but {width}x{height} {encoding} with step {step} "
                                   f"needs {expected}")
    raw = msg.data if isinstance(msg.data, np.ndarray) else memoryview(msg.data).cast("B")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, step)[:, :row_bytes]  # a view, no copy
    if spec.itemsize == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        rows = np.ascontiguousarray(rows).view(dtype).astype(np.uint16, copy=False)
    return rows.reshape(height, width, spec.channels) if spec.channels > 1 else rows.reshape(height, width)


def image_msg_to_bgr(msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
    """A sensor_msgs/Image as uint8 BGR HxWx3. bgr8 input comes back as a (read-only use) view of msg.data."""
    pixels = image_msg_to_array(msg, max_size)
    spec = ENCODINGS[str(msg.encoding)]
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)  # full 16-bit range -> 8 bits, as cv_bridge's mono16->mono8
    if spec.to_bgr is None:
        return pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), spec.to_bgr)


def compressed_msg_to_bgr(msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg, png, ...) as uint8 BGR HxWx3."""
    size = len(msg.data)
    if size == 0:
        raise ImageConversionError(f"empty compressed image (format '{msg.format}')")
    raw = msg.data if isinstance(msg.data, np.ndarray) else memoryview(msg.data).cast("B")
    bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"corrupt or unknown compressed image ({size} bytes, format '{msg.format}')")
    _check_size(bgr.shape[1], bgr.shape[0], max_size)
    return bgr


def bgr_to_image_msg(bgr: np.ndarray, header: Any = None, encoding: str = "bgr8") -> Any:
    """A sensor_msgs/Image from a uint8 BGR (or gray) array; `header` is copied when given."""
    from sensor_msgs.msg import Image

    if encoding not in OUTPUT_ENCODINGS:
        raise ImageConversionError(f"cannot publish encoding '{encoding}' (use one of {', '.join(OUTPUT_ENCODINGS)})")
    if bgr.dtype != np.uint8 or bgr.ndim not in (2, 3):
        raise ImageConversionError(f"expected a uint8 gray or BGR array, got {bgr.dtype} {bgr.shape}")
    if encoding == "mono8":
        pixels = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        pixels = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR) if bgr.ndim == 2 else bgr
        if encoding == "rgb8":
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    msg.data = pixels.tobytes()  # one memcpy; rclpy stores it as array('B')
    return msg
