"""Pipeline results -> emotion_msgs messages."""
from __future__ import annotations

import array
from typing import Any, Sequence

from emotion_msgs.msg import Emotion, EmotionArray
from sensor_msgs.msg import RegionOfInterest

from ..core.types import FaceResult, PipelineResult


def emotion_message(face: FaceResult, class_names: Sequence[str]) -> Emotion:
    k = face.label_index
    x, y, w, h = face.roi
    return Emotion(
        face_id=face.face_id, label=class_names[k], confidence=float(face.scores[k]), class_names=list(class_names),
        scores=array.array("f", face.scores.tolist()), raw_scores=array.array("f", face.raw_scores.tolist()),
        roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
        detection_score=float(face.detection.score),
        landmarks=array.array("f", face.detection.landmarks.reshape(-1).tolist()),
        track_age=face.track_age)


def emotion_array(header: Any, result: PipelineResult, model_id: str, class_names: Sequence[str]) -> EmotionArray:
    return EmotionArray(header=header, model_id=model_id,
                        emotions=[emotion_message(face, class_names) for face in result.faces])
