"""Run a face detector in a background thread on the newest frame offered to it.

With faces already tracked, the pipeline need not wait for the detector: it classifies the tracked boxes
of every frame at once and folds in fresh detections whenever the detector finishes one (its boxes are a
few frames old, like detect_every_n's). Detection then runs on the second core while classification runs
on the first, instead of the two adding up on every Nth frame.
"""
from __future__ import annotations

import threading

import numpy as np

from ..types import Detection
from .base import FaceDetector


class BackgroundDetector:
    def __init__(self, detector: FaceDetector):
        self.detector = detector
        self._use = threading.Lock()  # one detection at a time: cv2.dnn nets are not re-entrant
        self._cond = threading.Condition()
        self._job: np.ndarray | None = None
        self._busy = False
        self._done: list[Detection] | None = None
        self._error: BaseException | None = None
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="face_detector", daemon=True)
        self._thread.start()

    def idle(self) -> threading.Lock:
        """A context manager held while no detection runs (to change the detector's settings safely)."""
        return self._use

    def offer(self, frame: np.ndarray) -> bool:
        """Start detecting on `frame` if the detector is idle; returns whether it was taken."""
        with self._cond:
            if self._busy or self._job is not None:
                return False
            self._job = frame
            self._cond.notify_all()
            return True

    def poll(self) -> list[Detection] | None:
        """The detections finished since the last poll, or None. Re-raises a detector error here."""
        with self._cond:
            done, self._done = self._done, None
            error, self._error = self._error, None
        if error is not None:
            raise error
        return done

    def detect_now(self, frame: np.ndarray) -> list[Detection]:
        """Synchronous detection (after any running job), discarding background results made stale by it."""
        with self._cond:
            self._job = None
            while self._busy:
                self._cond.wait()
            self._done = None
        with self._use:
            return self.detector.detect(frame)

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and self._running:
                    self._cond.wait()
                if not self._running:
                    return
                frame, self._job, self._busy = self._job, None, True
            detections, error = None, None
            try:
                with self._use:
                    detections = self.detector.detect(frame)
            except Exception as exc:  # handed to the caller's thread by poll()
                error = exc
            with self._cond:
                self._busy = False
                self._done, self._error = detections, error
                self._cond.notify_all()
