"""REP-155 output of the real EmotionNode over DDS, with the real hri_msgs types: two faces in one frame.

Skipped, naming hri_msgs, when it is not built (no ../shared/ros2-interfaces at `make setup`, no system package).
"""
from __future__ import annotations

import importlib.util
import re

import cv2
import numpy as np
import pytest

from conftest import spin_until
from emotion_recognition_ros.core.affect import expression
from emotion_recognition_ros.core.tracking.tracker import iou
from emotion_recognition_ros.media.sources import ASTRONAUT_FACE

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hri_msgs") is None,
                                reason="hri_msgs is not built (make setup with ../shared/ros2-interfaces/hri_msgs, "
                                       "or apt-get install ros-$ROS_DISTRO-hri-msgs)")

FACE_TOPICS = ("roi", "cropped", "aligned", "landmarks", "expression")
TIMEOUT_S = 0.5
ROS_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def two_astronauts() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """scikit-image's astronaut twice side by side: a 1024x512 frame with two real faces, and their boxes."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    x, y, w, h = ASTRONAUT_FACE
    return np.hstack([photo, photo]), [(x, y, w, h), (x + photo.shape[1], y, w, h)]


class HriRig:
    def __init__(self, executor, ros_context):
        import rclpy
        from emotion_msgs.msg import EmotionArray
        from hri_msgs.msg import IdsList
        from sensor_msgs.msg import Image

        from emotion_recognition_ros.ros.emotion_node import EmotionNode

        self.executor = executor
        self.node = EmotionNode(context=ros_context, parameter_overrides={
            "device": "cpu", "detect_async": False, "ros4hri": True, "ros4hri_timeout_s": TIMEOUT_S,
            "publish_heatmap": False})
        self.peer = rclpy.create_node("hri_peer", context=ros_context)
        executor.add_node(self.node)
        executor.add_node(self.peer)
        self.tracked: list = []
        self.emotions: list = []
        self.per_face: dict[tuple[str, str], list] = {}
        self.peer.create_subscription(IdsList, "/humans/faces/tracked", self.tracked.append, 50)
        self.peer.create_subscription(EmotionArray, "/emotion", self.emotions.append, 50)
        self.pub = self.peer.create_publisher(Image, "/image_raw", 10)
        assert spin_until(executor, lambda: self.pub.get_subscription_count() > 0, 10)
        self.stamp = 100

    def send(self, frame: np.ndarray) -> int:
        from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

        self.stamp += 1
        msg = bgr_to_image_msg(frame)
        msg.header.stamp.sec, msg.header.frame_id = self.stamp, "camera"
        self.pub.publish(msg)
        stamp = self.stamp
        assert spin_until(self.executor, lambda: any(t.header.stamp.sec == stamp for t in self.tracked), 30), \
            f"no /humans/faces/tracked for stamp {stamp}"
        return stamp

    def ids(self, stamp: int) -> list[str]:
        return list(next(t for t in self.tracked if t.header.stamp.sec == stamp).ids)

    def subscribe_face(self, face_id: str) -> None:
        from hri_msgs.msg import Expression, FacialLandmarks, NormalizedRegionOfInterest2D
        from sensor_msgs.msg import Image

        kinds = dict(zip(FACE_TOPICS, (NormalizedRegionOfInterest2D, Image, Image, FacialLandmarks, Expression)))
        for name, kind in kinds.items():
            got = self.per_face.setdefault((face_id, name), [])
            self.peer.create_subscription(kind, f"/humans/faces/{face_id}/{name}", got.append, 10)
        topics = [f"/humans/faces/{face_id}/{name}" for name in FACE_TOPICS]
        assert spin_until(self.executor, lambda: all(self.node.count_subscribers(t) for t in topics), 10)

    def face_message(self, face_id: str, name: str, stamp: int):
        got = self.per_face[(face_id, name)]
        assert spin_until(self.executor, lambda: any(m.header.stamp.sec == stamp for m in got), 10), \
            f"no {name} of {face_id} for stamp {stamp}"
        return next(m for m in got if m.header.stamp.sec == stamp)


@pytest.fixture
def hri(executor, ros_context):
    return HriRig(executor, ros_context)


def test_two_faces_are_announced_and_published_under_their_ids(hri):
    from hri_msgs.msg import Expression, FacialLandmarks

    constants = {v for k, v in vars(Expression).items() if k.isupper() and isinstance(v, str)}
    frame, boxes = two_astronauts()
    ids = hri.ids(hri.send(frame))
    assert len(ids) == 2 and len(set(ids)) == 2 and all(ROS_TOKEN.match(i) for i in ids), ids
    for face_id in ids:
        hri.subscribe_face(face_id)
    stamp = hri.send(frame)
    assert hri.ids(stamp) == ids  # the tracker keeps the ids while the faces stay
    emotions = next(e for e in hri.emotions if e.header.stamp.sec == stamp)
    height, width = frame.shape[:2]
    found = []
    for face_id in ids:
        msgs = {name: hri.face_message(face_id, name, stamp) for name in FACE_TOPICS}
        assert all(m.header.frame_id == "camera" for m in msgs.values())
        roi = msgs["roi"]
        assert 0.0 <= roi.xmin < roi.xmax <= 1.0 and 0.0 <= roi.ymin < roi.ymax <= 1.0 and 0.9 <= roi.c <= 1.0
        box = (roi.xmin * width, roi.ymin * height, (roi.xmax - roi.xmin) * width, (roi.ymax - roi.ymin) * height)
        best = max(range(2), key=lambda k: iou(box, boxes[k]))
        assert iou(box, boxes[best]) > 0.5, (box, boxes)
        found.append(best)
        for image in (msgs["cropped"], msgs["aligned"]):
            assert (image.width, image.height, image.encoding) == (128, 128, "bgr8")
        marks = msgs["landmarks"]
        right_eye, left_eye = marks.landmarks[FacialLandmarks.RIGHT_PUPIL], marks.landmarks[FacialLandmarks.LEFT_PUPIL]
        assert (marks.width, marks.height) == (width, height) and right_eye.x < left_eye.x  # the person's right
        for point in (right_eye, left_eye, marks.landmarks[FacialLandmarks.NOSE]):
            assert roi.xmin <= point.x <= roi.xmax and roi.ymin <= point.y <= roi.ymax
        face = msgs["expression"]
        assert face.expression in constants and -1.0 <= face.valence <= 1.0 and -1.0 <= face.arousal <= 1.0
        # The same face's emotion_msgs scores give the same constant and its summed probability.
        same = next(e for e in emotions.emotions if f"face{e.face_id}" == face_id)
        assert (face.expression, face.confidence) == pytest.approx(expression(same.class_names, same.scores))
    assert sorted(found) == [0, 1]


def test_publishers_are_removed_after_the_faces_leave(hri):
    frame, _ = two_astronauts()
    ids = hri.ids(hri.send(frame))
    assert len(ids) == 2
    topics = [f"/humans/faces/{i}/{name}" for i in ids for name in FACE_TOPICS]
    assert spin_until(hri.executor, lambda: all(hri.peer.count_publishers(t) == 1 for t in topics), 10)
    empty = np.full_like(frame, 90)
    assert hri.ids(hri.send(empty)) == []  # announced empty at once
    assert all(hri.peer.count_publishers(t) == 1 for t in topics)  # still there within the timeout
    # Removed by the node's 1 Hz timer even when no frame comes; frames keep coming here.
    for _ in range(20):
        if spin_until(hri.executor, lambda: all(hri.peer.count_publishers(t) == 0 for t in topics), 0.5):
            break
        hri.send(empty)
    assert all(hri.peer.count_publishers(t) == 0 for t in topics), {t: hri.peer.count_publishers(t) for t in topics}
    assert hri.peer.count_publishers("/humans/faces/tracked") == 1
