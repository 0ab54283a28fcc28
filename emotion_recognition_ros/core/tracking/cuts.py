"""Scene cuts: frames after which no track may continue.

A track id is handed on by overlap alone (tracker.py), so after a video cut, a camera switch or a jump of a
recording, a different person whose face lands where the old face was would inherit the old face's id (and
its smoothed scores). A cut is detected on the whole frame: the frame shrunk to 32x24 grey, made zero-mean
and unit-norm, is compared with the previous frame's by correlation. A camera watching one place keeps it near
1 (sensor noise, a few pixels of pan, people moving, an exposure change scaling every pixel); a new shot drops
it towards 0. On the demo's scenes (`media.scenes`, 640x480) frames of one scene correlate >= 0.98 and
frames across a scene change <= 0.30 (test/test_tracking_cuts.py measures it).
"""
from __future__ import annotations

import cv2
import numpy as np

SIGNATURE_SIZE = (32, 24)  # width, height of the shrunk frame
MIN_CORRELATION = 0.6  # below this, the frame starts a new shot


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """The frame (uint8 BGR or grey) as a zero-mean, unit-norm 24x32 float vector."""
    small = cv2.resize(frame, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    signature = small.astype(np.float32).ravel()
    signature -= signature.mean()
    norm = float(np.linalg.norm(signature))
    return signature / norm if norm > 1e-6 else signature


class SceneCutDetector:
    """`update(frame)` is True when the frame does not continue the previous one (a cut). The first frame
    is not a cut: there is nothing to continue. `enabled = False` turns it off (benchmarks/id_switches.py
    measures with and without)."""

    def __init__(self, min_correlation: float = MIN_CORRELATION):
        self.min_correlation = min_correlation
        self.enabled = True
        self.correlation = 1.0  # of the latest frame with the one before it
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None
        self.correlation = 1.0

    def update(self, frame: np.ndarray) -> bool:
        if not self.enabled:
            return False
        signature = frame_signature(frame)
        previous, self._previous = self._previous, signature
        if previous is None or previous.shape != signature.shape:
            self.correlation = 1.0
            return previous is not None  # a new frame size is a new stream
        if not previous.any() or not signature.any():  # a uniform frame (covered lens, blank): no faces to pass on
            self.correlation = 1.0
            return False
        self.correlation = float(previous @ signature)
        return self.correlation < self.min_correlation
