"""How closely two detectors agree on the same frames: face counts, box IoU, landmark distance, scores.

Used by benchmarks/gpu_bench.py, which prints these figures for the machine it runs on, and by the tests that hold
the torch MTCNN to the cv2 one (test/test_mtcnn_torch.py, test/cuda); not part of the runtime package. The
CPU and CUDA arithmetic differ a little (TF32 convolutions, fp32 sums).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.types import Detection
from emotion_recognition_ros.core.tracking.tracker import iou


@dataclass
class Agreement:
    frames: int = 0
    same_count: int = 0  # frames where both found the same number of faces
    ious: list[float] = field(default_factory=list)  # per reference face: IoU with its best match (0 if none)
    landmark_pct: list[float] = field(default_factory=list)  # per matched face: worst landmark distance, % of width
    score_diffs: list[float] = field(default_factory=list)  # per matched face: |score difference|

    def add(self, reference: Sequence[Detection | None], other: Sequence[Detection | None]) -> None:
        """One frame's detections from the reference detector and from the one being checked (None entries, as
        `refine` returns for lost faces, count as no face)."""
        reference = [d for d in reference if d is not None]
        other = [d for d in other if d is not None]
        self.frames += 1
        self.same_count += len(reference) == len(other)
        for ref in reference:
            overlaps = [iou(ref.box, o.box) for o in other]
            best = int(np.argmax(overlaps)) if overlaps else -1
            self.ious.append(overlaps[best] if overlaps else 0.0)
            if best < 0:
                continue
            match = other[best]
            if ref.landmarks.shape == match.landmarks.shape and ref.landmarks.size:
                worst = float(np.linalg.norm(ref.landmarks - match.landmarks, axis=1).max())
                self.landmark_pct.append(100.0 * worst / max(ref.box[2], 1.0))
            self.score_diffs.append(abs(ref.score - match.score))

    def summary(self) -> dict:
        def stats(values: list[float]) -> dict:
            if not values:
                return {"n": 0}
            v = np.asarray(values)
            return {"n": int(v.size), "min": round(float(v.min()), 4), "median": round(float(np.median(v)), 4),
                    "p95": round(float(np.percentile(v, 95)), 4), "max": round(float(v.max()), 4)}

        return {"frames": self.frames, "same_count_frames": self.same_count, "iou": stats(self.ious),
                "landmark_pct_of_width": stats(self.landmark_pct), "score_abs_diff": stats(self.score_diffs)}
