"""Pipeline results -> emotion_msgs messages."""
from __future__ import annotations

import array
from typing import Any, Sequence

from emotion_msgs.msg import Emotion, EmotionArray
from sensor_msgs.msg import RegionOfInterest

from ..core.explain import REGION_NAMES, region_shares
from ..core.types import FaceResult, PipelineResult


def emotion_message(face: FaceResult, class_names: Sequence[str], heatmap=None, explained: int | None = None
                    ) -> Emotion:
    """One face's message; with its heatmap (and the class it explains) also the evidence by facial region."""
    k = face.label_index
    x, y, w, h = face.roi
    msg = Emotion(
        face_id=face.face_id, label=class_names[k], confidence=float(face.scores[k]), class_names=list(class_names),
        scores=array.array("f", face.scores.tolist()), raw_scores=array.array("f", face.raw_scores.tolist()),
        roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
        detection_score=float(face.detection.score),
        landmarks=array.array("f", face.detection.landmarks.reshape(-1).tolist()),
        track_age=face.track_age)
    shares = None if heatmap is None else region_shares(heatmap, face.detection.landmarks, face.crop_box,
                                                        face.crop_roll)
    if shares is not None and explained is not None:
        msg.explained_class = class_names[explained]
        msg.region_names = list(REGION_NAMES)
        msg.region_shares = array.array("f", shares.tolist())
    return msg


def emotion_array(header: Any, result: PipelineResult, model_id: str, class_names: Sequence[str]) -> EmotionArray:
    return EmotionArray(header=header, model_id=model_id,
                        emotions=[emotion_message(face, class_names, *_explained(result, i))
                                  for i, face in enumerate(result.faces)])


def _explained(result: PipelineResult, i: int) -> tuple[Any, int | None]:
    """(heatmap, class) of face i when the result was explained, else (None, None)."""
    if result.heatmaps is None or i >= len(result.heatmaps) or i >= len(result.heatmap_classes):
        return None, None
    return result.heatmaps[i], result.heatmap_classes[i]
