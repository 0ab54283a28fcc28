"""The core's data: a detection, one face's result, one frame's result."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

STAGES = ("detect", "preprocess", "classify", "explain")


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in frame pixels
    score: float  # detector confidence in [0, 1]
    landmarks: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.float32))  # (K, 2) x, y




@dataclass
class FaceResult:
    face_id: int  # stable across frames while the face is tracked (Emotion.face_id)
    detection: Detection
    crop_box: tuple[float, float, float, float]  # square box the classifier's crop was cut from
    roi: tuple[int, int, int, int]  # crop_box rounded and clipped to the frame (x, y, w, h)
    crop: np.ndarray  # the crop box's BGR pixels, as in the frame (the classifier saw them rotated by crop_roll)
    raw_scores: np.ndarray  # this frame's probabilities
    scores: np.ndarray  # temporally smoothed probabilities
    track_age: int
    fresh: bool  # detected in this frame (False: box carried from an earlier detection)
    crop_roll: float = 0.0  # degrees the classifier's crop was rotated by to level the eyes (align_faces)

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.scores))


@dataclass
class PipelineResult:
    faces: list[FaceResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))  # seconds per stage
    detected: bool = False  # boxes were measured on this frame (full detection or refined tracks)
    refined: bool = False  # ... by re-measuring tracked faces near their old boxes, not a full detection
    batch: torch.Tensor | None = None  # network input of all faces, for a later explanation
    heatmaps: np.ndarray | None = None  # (N, S, S) CAM maps when explain=True (core/explain.py)
    heatmap_classes: list[int] = field(default_factory=list)  # the class each heatmap explains
    # (layer name, its output on `batch`) from the classifier's fp32 forward (Classifier.layer_output), which the
    # explainer reuses rather than running the layers below its layer again
    layer_output: tuple[str, torch.Tensor] | None = None
