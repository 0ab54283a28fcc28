"""Per-track temporal smoothing of class probabilities (exponential moving average).

Raw per-frame probabilities flicker; an EMA with weight `alpha` on the past steadies the label without
a fixed window's lag spike. alpha = 0 turns smoothing off (smoothed == raw).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


class EmaSmoother:
    def __init__(self, alpha: float = 0.5):
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def update(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities into the track's average; returns the smoothed vector."""
        previous = self._state.get(track_id)
        if previous is None or self.alpha == 0.0 or previous.shape != probs.shape:
            smoothed = probs.astype(np.float32, copy=True)
        else:
            smoothed = self.alpha * previous + (1.0 - self.alpha) * probs
            smoothed /= smoothed.sum()  # keep an exact distribution despite float rounding
        self._state[track_id] = smoothed
        return smoothed

    def forget(self, track_ids: Iterable[int]) -> None:
        for track_id in track_ids:
            self._state.pop(track_id, None)

    def reset(self) -> None:
        self._state.clear()
