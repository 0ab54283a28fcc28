"""A detector for inputs that are already face crops."""
from __future__ import annotations

import numpy as np

from ..types import Detection
from .base import FaceDetector, register_detector


@register_detector("full_frame")
class FullFrameDetector(FaceDetector):
    """Treats the whole image as one face: for inputs that are already face crops (e.g. a face camera)."""

    name = "full_frame"

    def __init__(self, **_ignored):
        pass

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), 1.0)]
