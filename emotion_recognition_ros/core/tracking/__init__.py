"""Stable face ids across frames (tracker.py, ended at scene cuts: cuts.py) and per-face temporal smoothing
(smoother.py)."""
from .cuts import SceneCutDetector
from .smoother import EmaSmoother
from .tracker import IouTracker, Track, iou, match_boxes

__all__ = ["EmaSmoother", "IouTracker", "SceneCutDetector", "Track", "iou", "match_boxes"]
