"""The face detector protocol and the registry by name (`create_detector("mtcnn", ...)`).

Only detectors whose weights come inside a registry package qualify (nothing is downloaded at run time).
Each detector also says how its boxes relate to the tight, square CK+ crops the classifier was trained on
(`box_adjust`), so the pipeline can crop what the classifier saw in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import cv2
import numpy as np

from ..types import Detection


@dataclass(frozen=True)
class BoxAdjust:
    """Maps a detector box to the classifier's training crop: centre shift (fractions of the box's w, h)
    and side = scale * max(w, h). Measured per detector on pasted CK+ faces (see docs/node.md)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = box
        cx, cy = x + w / 2.0 + self.dx * w, y + h / 2.0 + self.dy * h
        side = max(w, h) * self.scale
        return cx - side / 2.0, cy - side / 2.0, side, side


class FaceDetector(Protocol):
    name: str
    box_adjust: BoxAdjust

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """Faces in a uint8 BGR frame, best first."""

    # Optional: `refine(bgr, previous) -> list[Detection | None]` re-measures faces known from an earlier
    # frame near their old boxes, far cheaper than `detect`; None where a face is no longer there.
    # The pipeline uses it between full detections (see `PipelineConfig.detect_every_n`).


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    def wrap(factory: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = factory
        return factory
    return wrap


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **options) -> FaceDetector:
    """A detector by registry name; unknown names raise ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector '{name}' (available: {', '.join(available_detectors())})")
    return _REGISTRY[name](**options)


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
