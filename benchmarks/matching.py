"""Scoring a node's answers against the faces pasted into the frames.

A predicted face matches a pasted one when their boxes overlap with IoU >= 0.3 (detector boxes include
forehead and chin while CK+ crops are tight, so 0.5 would reject correct detections), greedily by IoU.
A pasted face without a match counts as wrong; a prediction without a face is a false positive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from emotion_recognition_ros.core.classes import CKPLUS6
from emotion_recognition_ros.core.tracking.tracker import match_boxes as _match_boxes

IOU_MATCH = 0.3
Box = tuple[float, float, float, float]  # x, y, w, h

# The fer package's FER2013 names for the classes we share (its 'neutral' has no counterpart).
PEER_TO_OURS = {"angry": "anger", "sad": "sadness"}


def match_boxes(truth: Sequence[Box], predicted: Sequence[Box], threshold: float = IOU_MATCH) -> list[tuple[int, int]]:
    """(truth index, predicted index) pairs, each used at most once, best IoU first."""
    return _match_boxes(truth, predicted, threshold)


@dataclass
class PredictedFace:
    box: Box
    label: str  # as published (may be a class we do not have, e.g. the peer's 'neutral')
    label_six: str  # argmax over the six shared classes of the unsmoothed scores


def predicted_faces(msg) -> list[PredictedFace]:
    """Faces of an emotion_msgs/EmotionArray, class names mapped onto ours."""
    faces = []
    for e in msg.emotions:
        names = [PEER_TO_OURS.get(n, n) for n in e.class_names]
        scores = list(e.raw_scores) or list(e.scores)
        six = [(s, n) for s, n in zip(scores, names) if n in CKPLUS6]
        label_six = max(six)[1] if six else ""
        roi = e.roi
        faces.append(PredictedFace((float(roi.x_offset), float(roi.y_offset), float(roi.width), float(roi.height)),
                                   PEER_TO_OURS.get(e.label, e.label), label_six))
    return faces


@dataclass
class Score:
    faces: int = 0  # pasted faces in the scored frames
    detected: int = 0  # of which matched by a predicted box
    correct: int = 0  # matched and published label right
    correct_six: int = 0  # matched and right when restricted to the six shared classes
    false_positives: int = 0
    frames: int = 0
    per_class: dict[str, list[int]] = field(default_factory=dict)  # label -> [correct, total]

    def add(self, truth_boxes: Sequence[Box], truth_labels: Sequence[str], faces: Sequence[PredictedFace]) -> None:
        self.frames += 1
        self.faces += len(truth_boxes)
        pairs = match_boxes(truth_boxes, [f.box for f in faces])
        self.false_positives += len(faces) - len(pairs)
        matched = dict(pairs)
        for i, label in enumerate(truth_labels):
            hit = self.per_class.setdefault(label, [0, 0])
            hit[1] += 1
            if i not in matched:
                continue
            self.detected += 1
            face = faces[matched[i]]
            self.correct += face.label == label
            self.correct_six += face.label_six == label
            hit[0] += face.label == label

    def as_dict(self) -> dict:
        def frac(n: int) -> float | None:
            return round(n / self.faces, 4) if self.faces else None

        return {"frames": self.frames, "faces": self.faces, "detected": self.detected,
                "recall": frac(self.detected), "accuracy": frac(self.correct),
                "accuracy_six": frac(self.correct_six), "false_positives": self.false_positives,
                "per_class_accuracy": {k: round(c / t, 3) for k, (c, t) in sorted(self.per_class.items()) if t}}
