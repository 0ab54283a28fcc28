"""Face detectors behind one base class, created by name; scheduling.py decides when the pipeline runs them."""
from . import full_frame, mtcnn, mtcnn_torch  # noqa: F401  (each registers itself)
from ..types import Detection
from .base import BoxAdjust, FaceDetector, available_detectors, create_detector, detector_for, register_detector

__all__ = ["BoxAdjust", "Detection", "FaceDetector", "available_detectors", "create_detector", "detector_for",
           "register_detector"]
