"""Per-track temporal smoothing of class probabilities (exponential moving average).

Raw per-frame probabilities flicker; an EMA with weight `smoothing` on the past steadies the label without
a fixed window's lag spike. smoothing = 0 turns smoothing off (smoothed == raw).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


class EmaSmoother:
    def __init__(self, smoothing: float = 0.5):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self._state: dict[int, np.ndarray] = {}

    def update(self, face_id: int, probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities into the track's average; returns the smoothed vector."""
        previous = self._state.get(face_id)
        if previous is None or self.smoothing == 0.0 or previous.shape != probs.shape:
            smoothed = probs.astype(np.float32, copy=True)
        else:
            smoothed = self.smoothing * previous + (1.0 - self.smoothing) * probs
            smoothed /= smoothed.sum()  # keep an exact distribution despite float rounding
        self._state[face_id] = smoothed
        return smoothed

    def forget(self, face_ids: Iterable[int]) -> None:
        for face_id in face_ids:
            self._state.pop(face_id, None)

    def reset(self) -> None:
        self._state.clear()
