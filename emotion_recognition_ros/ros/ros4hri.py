"""REP-155 (ROS4HRI) output: `/humans/faces/tracked` and, per tracked face, `/humans/faces/<id>/{roi, cropped,
aligned, landmarks, expression}`, from one frame's PipelineResult. Needs the `hri_msgs` package.

Every message of a frame carries that frame's header. Ids are the tracker's faces (`face_token`), unique while
tracked and valid ROS name tokens. A face's publishers stay while it is tracked and are removed once it has not
been published for `timeout_s` (REP-155: a consumer sees the face's topics disappear). Expression constants and
valence/arousal: core/affect.py.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
from sensor_msgs.msg import Image

from ..core.affect import expression, valence_arousal
from ..core.alignment import align_face
from ..core.types import FaceResult, PipelineResult
from .image_conversion import bgr_to_image_msg

MISSING = ("the hri_msgs package is not installed: ros4hri:=true needs it (apt-get install ros-$ROS_DISTRO-hri-msgs, "
           "or make setup with ../shared/ros2-interfaces/hri_msgs beside the checkout)")
FACES = "/humans/faces"
# MTCNN's five points (image-left eye first) under the FacialLandmarks codes that name them: the image's left
# eye is the person's right.
LANDMARK_CODES = ("RIGHT_PUPIL", "LEFT_PUPIL", "NOSE", "MOUTH_OUTER_RIGHT", "MOUTH_OUTER_LEFT")
LANDMARK_COUNT = 70  # FacialLandmarks.landmarks is a fixed array, indexed by the codes


def missing_reason() -> str | None:
    """Why REP-155 output cannot run here (hri_msgs not importable), or None."""
    try:
        import hri_msgs.msg  # noqa: F401  (optional: only ros4hri:=true needs it)
    except ImportError:
        return MISSING
    return None


def face_token(face_id: int) -> str:
    """A tracker id as a REP-155 id: a valid ROS name token (letters first), unique while the face is tracked."""
    return f"face{face_id}"


@dataclass
class FacePublishers:
    roi: Any
    cropped: Any
    aligned: Any
    landmarks: Any
    expression: Any
    last_seen: float


class Ros4HriOutput:
    """Publishes REP-155 face topics on `node`; `publish` per processed frame, `close` removes every publisher."""

    def __init__(self, node: Any, image_size: int = 128, timeout_s: float = 1.0):
        if reason := missing_reason():
            raise ValueError(reason)
        from hri_msgs import msg as hri

        self._hri = hri
        self.node = node
        self.image_size = image_size
        self.timeout_s = timeout_s
        self.tracked_pub = node.create_publisher(hri.IdsList, f"{FACES}/tracked", 10)
        self.faces: dict[str, FacePublishers] = {}
        self._lock = threading.Lock()  # the worker publishes, the node's timer removes stale faces

    def publish(self, header: Any, frame: np.ndarray, result: PipelineResult, class_names: Sequence[str]) -> None:
        now = time.monotonic()
        ids = []
        with self._lock:
            for face in result.faces:
                token = face_token(face.face_id)
                ids.append(token)
                self._publish_face(self._publishers(token, now), header, frame, face, class_names)
            self.tracked_pub.publish(self._hri.IdsList(header=header, ids=ids))
        self.remove_stale(now)

    def _publishers(self, token: str, now: float) -> FacePublishers:
        pubs = self.faces.get(token)
        if pubs is None:
            hri, prefix = self._hri, f"{FACES}/{token}"
            pubs = FacePublishers(*(self.node.create_publisher(kind, f"{prefix}/{name}", 1) for kind, name in (
                (hri.NormalizedRegionOfInterest2D, "roi"), (Image, "cropped"), (Image, "aligned"),
                (hri.FacialLandmarks, "landmarks"), (hri.Expression, "expression"))), last_seen=now)
            self.faces[token] = pubs
        pubs.last_seen = now
        return pubs

    def _publish_face(self, pubs: FacePublishers, header: Any, frame: np.ndarray, face: FaceResult,
                      class_names: Sequence[str]) -> None:
        height, width = frame.shape[:2]
        pubs.roi.publish(self.roi(header, face.detection.box, face.detection.score, width, height))
        if pubs.cropped.get_subscription_count():
            crop = cv2.resize(face.crop, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
            pubs.cropped.publish(bgr_to_image_msg(crop, header))
        landmarks = face.detection.landmarks
        if pubs.aligned.get_subscription_count() and landmarks.shape == (5, 2):
            pubs.aligned.publish(bgr_to_image_msg(align_face(frame, landmarks, self.image_size), header))
        if landmarks.shape == (5, 2):
            pubs.landmarks.publish(self.landmarks(header, landmarks, face.detection.score, width, height))
        name, confidence = expression(class_names, face.scores)
        valence, arousal = valence_arousal(class_names, face.scores)
        pubs.expression.publish(self._hri.Expression(header=header, expression=name, valence=valence,
                                                     arousal=arousal, confidence=confidence))

    def roi(self, header: Any, box: tuple[float, float, float, float], score: float, width: int, height: int):
        """The detector's box, normalised to the image and clipped to [0, 1]; `c` = detector confidence."""
        x, y, w, h = box
        xmin, xmax = np.clip([x / width, (x + w) / width], 0.0, 1.0)
        ymin, ymax = np.clip([y / height, (y + h) / height], 0.0, 1.0)
        return self._hri.NormalizedRegionOfInterest2D(header=header, xmin=float(xmin), ymin=float(ymin),
                                                       xmax=float(xmax), ymax=float(ymax), c=float(score))

    def landmarks(self, header: Any, points: np.ndarray, score: float, width: int, height: int):
        """MTCNN's five points at their codes' places, normalised; the other 65 are zero with c = 0."""
        msg = self._hri.FacialLandmarks(header=header, width=width, height=height)
        points_of = [self._hri.NormalizedPointOfInterest2D() for _ in range(LANDMARK_COUNT)]
        for code, (x, y) in zip(LANDMARK_CODES, points):
            points_of[getattr(self._hri.FacialLandmarks, code)] = self._hri.NormalizedPointOfInterest2D(
                x=float(np.clip(x / width, 0.0, 1.0)), y=float(np.clip(y / height, 0.0, 1.0)), c=float(score))
        msg.landmarks = points_of
        return msg

    def remove_stale(self, now: float | None = None) -> list[str]:
        """Destroy the publishers of faces not published for `timeout_s`; returns their ids."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [token for token, pubs in self.faces.items() if now - pubs.last_seen > self.timeout_s]
            for token in stale:
                self._destroy(self.faces.pop(token))
        return stale

    def _destroy(self, pubs: FacePublishers) -> None:
        for pub in (pubs.roi, pubs.cropped, pubs.aligned, pubs.landmarks, pubs.expression):
            self.node.destroy_publisher(pub)

    def close(self) -> None:
        """Remove every face's publishers and the tracked list's."""
        with self._lock:
            for pubs in self.faces.values():
                self._destroy(pubs)
            self.faces.clear()
            self.node.destroy_publisher(self.tracked_pub)
