"""Stable face ids across frames (tracker.py) and per-face temporal smoothing (smoother.py)."""
from .smoother import EmaSmoother
from .tracker import IouTracker, Track, iou, match_boxes

__all__ = ["EmaSmoother", "IouTracker", "Track", "iou", "match_boxes"]
