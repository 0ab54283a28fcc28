"""When to run the full detector: every Nth frame, re-measuring tracked faces in between, or in the background.

The policy (see `PipelineConfig.detect_every_n`, `track_refine`, `detect_async`), kept apart from the pipeline's
wiring. `DetectionScheduler.next(frame, tracks)` answers, for one frame, a `FrameDetections`: a full detection
ran (`found`), the tracked faces were re-measured near their old boxes (`refined`), or nothing ran and the
tracked boxes are carried over unchanged (`carried`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..tracking.tracker import Track
from ..types import Detection

if TYPE_CHECKING:  # annotations only: the scheduler never builds or reads a config at import time
    from ..config import PipelineConfig
from .background import BackgroundDetector
from .base import FaceDetector

class Outcome(Enum):
    DETECTED = "detected"  # a full detection ran (or, in the background, finished) for this frame
    REFINED = "refined"  # the tracked faces were re-measured near their old boxes
    CARRIED = "carried"  # no detector ran: the tracked boxes carry over


@dataclass(frozen=True)
class FrameDetections:
    """The scheduler's answer for one frame."""

    outcome: Outcome
    found: list[Detection] = field(default_factory=list)  # DETECTED: the faces, best first
    refined: dict[int, Detection] = field(default_factory=dict)  # REFINED: face id -> its re-measured detection

    @staticmethod
    def detected(found: list[Detection]) -> "FrameDetections":
        return FrameDetections(Outcome.DETECTED, found=found)

    @staticmethod
    def carried() -> "FrameDetections":
        return FrameDetections(Outcome.CARRIED)

    @staticmethod
    def background(finished: list[Detection] | None) -> "FrameDetections":
        """A background detection's result if one finished since the last frame, else carried boxes."""
        return FrameDetections.carried() if finished is None else FrameDetections.detected(finished)


class DetectionScheduler:
    def __init__(self, detector: FaceDetector, config: PipelineConfig):
        self.detector = detector
        self.config = config
        self._background: BackgroundDetector | None = None
        self._frame_index = 0
        self._last_offer = -1_000_000
        self._since_detection = 0  # frames since the last full detection

    def next(self, frame: np.ndarray, tracks: Sequence[Track]) -> FrameDetections:
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

    def _background_detection(self, frame: np.ndarray, tracks: Sequence[Track]) -> FrameDetections:
        if self._background is None:
            self._background = BackgroundDetector(self.detector)
        if not tracks:  # nothing to carry: waiting costs nothing extra, there is nothing to classify
            self._last_offer = self._frame_index
            return FrameDetections.detected(self._background.detect_now(frame))
        finished = self._background.poll()
        # detect_every_n also paces the background detector: a new detection starts at most every Nth frame,
        # leaving CPU time to the classifier instead of detecting back to back.
        if self._frame_index - self._last_offer >= max(1, self.config.detect_every_n):
            if self._background.offer(frame):
                self._last_offer = self._frame_index
        return FrameDetections.background(finished)

    def _detect_or_refine(self, frame: np.ndarray, tracks: Sequence[Track]) -> FrameDetections:
        """Full detection every `detect_every_n` frames; in between, the visible tracks are re-measured near
        their old boxes (`detector.refine`, for MTCNN a small fraction of a full detection's cost). A face
        that cannot be re-measured (a scene cut, fast motion, it left) makes this frame a full detection, so
        the boxes published always come from this frame. New faces appear at the next full detection."""
        c = self.config
        due = self._since_detection + 1 >= max(1, c.detect_every_n)
        visible = [t for t in tracks if t.misses == 0]
        if not due and visible:
            if not c.track_refine or not self.detector.can_refine:
                self._since_detection += 1
                return FrameDetections.carried()
            refined = self.detector.refine(frame, [t.detection for t in visible])
            if all(d is not None for d in refined):
                self._since_detection += 1
                return FrameDetections(Outcome.REFINED, refined={t.face_id: d for t, d in zip(visible, refined)})
        self._since_detection = 0
        return FrameDetections.detected(self.detector.detect(frame))
