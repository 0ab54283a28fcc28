"""When to run the full detector: every Nth frame, re-measuring tracked faces in between, or in the background.

The policy (see `PipelineConfig.detect_every_n`, `track_refine`, `detect_async`), kept apart from the pipeline's
wiring. `DetectionScheduler.next(frame, tracks)` answers, for one frame, one of:
- a list of detections (a full detection ran on this frame),
- a dict face id -> detection (the tracked faces were re-measured near their old boxes),
- None (the tracked boxes are carried over unchanged).
"""
from __future__ import annotations

import contextlib
from typing import Sequence, Union

import numpy as np

from ..config import PipelineConfig
from ..tracking.tracker import Track
from ..types import Detection
from .background import BackgroundDetector
from .base import FaceDetector

Detections = Union[list[Detection], dict[int, Detection], None]


class DetectionScheduler:
    def __init__(self, detector: FaceDetector, config: PipelineConfig):
        self.detector = detector
        self.config = config
        self._background: BackgroundDetector | None = None
        self._frame_index = 0
        self._last_offer = -1_000_000
        self._since_detection = 0  # frames since the last full detection

    def next(self, frame: np.ndarray, tracks: Sequence[Track]) -> Detections:
        """This frame's detections (see the module docstring) given the tracker's current tracks."""
        if self.config.detect_async:
            found = self._background_detection(frame, tracks)
        else:
            found = self._detect_or_refine(frame, tracks)
        self._frame_index += 1
        return found

    def detector_idle(self) -> contextlib.AbstractContextManager:
        """Held while nothing runs the detector, so its settings can change safely (`reconfigure`)."""
        return self._background.idle() if self._background is not None else contextlib.nullcontext()

    def reset(self) -> None:
        """A new stream: start counting again and drop a background detection of the old one."""
        self._frame_index = 0
        self._since_detection = 0
        if self._background is not None:
            self._background.poll()

    def close(self) -> None:
        """Stop the background detector thread, if any."""
        if self._background is not None:
            self._background.close()
            self._background = None

    def _background_detection(self, frame: np.ndarray, tracks: Sequence[Track]) -> Detections:
        if self._background is None:
            self._background = BackgroundDetector(self.detector)
        if not tracks:  # nothing to carry: waiting costs nothing extra, there is nothing to classify
            self._last_offer = self._frame_index
            return self._background.detect_now(frame)
        finished = self._background.poll()
        # detect_every_n also paces the background detector: a new detection starts at most every Nth frame,
        # leaving CPU time to the classifier instead of detecting back to back.
        if self._frame_index - self._last_offer >= max(1, self.config.detect_every_n):
            if self._background.offer(frame):
                self._last_offer = self._frame_index
        return finished

    def _detect_or_refine(self, frame: np.ndarray, tracks: Sequence[Track]) -> Detections:
        """Full detection every `detect_every_n` frames; in between, the visible tracks are re-measured near
        their old boxes (`detector.refine`, ~1 ms a face instead of ~25 ms for MTCNN at 640x480). A face
        that cannot be re-measured (a scene cut, fast motion, it left) makes this frame a full detection, so
        the boxes published always come from this frame. New faces appear at the next full detection."""
        c = self.config
        due = self._since_detection + 1 >= max(1, c.detect_every_n)
        visible = [t for t in tracks if t.misses == 0]
        if not due and visible:
            if not c.track_refine or not hasattr(self.detector, "refine"):
                self._since_detection += 1
                return None
            refined = self.detector.refine(frame, [t.detection for t in visible])
            if all(d is not None for d in refined):
                self._since_detection += 1
                return {t.face_id: d for t, d in zip(visible, refined)}
        self._since_detection = 0
        return self.detector.detect(frame)
