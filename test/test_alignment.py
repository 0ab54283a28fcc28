"""core/alignment.py and core/affect.py: the REP-155 geometry and vocabulary, without ROS."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotion_recognition_ros.core.affect import CIRCUMPLEX, EXPRESSION_OF_CLASS, expression, valence_arousal
from emotion_recognition_ros.core.alignment import (EYE_GAP, EYE_ROW, align_face, eye_roll_degrees, level_crop,
                                                    level_eyes_transform, transform_points)
from emotion_recognition_ros.core.classes import CKPLUS6, EMOTIONS

# Every constant of hri_msgs/Expression (2.0.0) that a class may map to.
EXPRESSION_CONSTANTS = {"neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared"}


@pytest.mark.parametrize("roll_deg", [-35.0, -10.0, 0.0, 20.0, 40.0])
def test_the_transform_puts_both_eyes_level_at_their_places(roll_deg):
    size, centre, gap = 128, np.array([300.0, 200.0]), 70.0
    angle = np.deg2rad(roll_deg)
    half = 0.5 * gap * np.array([np.cos(angle), np.sin(angle)])
    matrix = level_eyes_transform(centre - half, centre + half, size)
    left, right = transform_points(matrix, np.stack([centre - half, centre + half]))
    assert left == pytest.approx([size * (0.5 - EYE_GAP / 2), size * EYE_ROW], abs=1e-6)
    assert right == pytest.approx([size * (0.5 + EYE_GAP / 2), size * EYE_ROW], abs=1e-6)


def test_align_face_levels_a_rotated_frame():
    """Two dots ("eyes") on a frame rotated by 25 degrees come out level and where EYE_ROW/EYE_GAP say."""
    frame = np.zeros((400, 400, 3), np.uint8)
    eyes = np.array([[170.0, 180.0], [230.0, 180.0]])
    for x, y in eyes:
        cv2.circle(frame, (int(x), int(y)), 4, (255, 255, 255), -1)
    rotation = cv2.getRotationMatrix2D((200.0, 200.0), 25.0, 1.0)
    rotated = cv2.warpAffine(frame, rotation, (400, 400))
    landmarks = np.vstack([transform_points(rotation, eyes), [[200, 220], [180, 250], [220, 250]]])
    aligned = align_face(rotated, landmarks, 128)
    assert aligned.shape == (128, 128, 3) and aligned.dtype == np.uint8
    ys, xs = np.nonzero(aligned[..., 0] > 128)
    left, right = xs < 64, xs >= 64
    assert abs(ys[left].mean() - ys[right].mean()) < 1.0  # level
    assert ys.mean() == pytest.approx(128 * EYE_ROW, abs=1.5)
    assert xs[right].mean() - xs[left].mean() == pytest.approx(128 * EYE_GAP, abs=1.5)


@pytest.mark.parametrize("roll_deg", [-30.0, 15.0])
def test_level_crop_undoes_the_roll_and_keeps_the_detectors_box(roll_deg):
    """The same two "eyes" upright and rolled about the box centre: the level crop of the rolled frame is the plain
    crop of the upright one (scale and position unchanged, only the roll removed)."""
    upright = np.zeros((300, 300, 3), np.uint8)
    eyes = np.array([[125.0, 130.0], [175.0, 130.0]])
    for x, y in eyes:
        cv2.circle(upright, (int(x), int(y)), 5, (255, 255, 255), -1)
    box = (90.0, 90.0, 120.0, 120.0)  # centre (150, 150)
    rotation = cv2.getRotationMatrix2D((150.0, 150.0), -roll_deg, 1.0)
    rolled = cv2.warpAffine(upright, rotation, (300, 300))
    landmarks = np.vstack([transform_points(rotation, eyes), np.zeros((3, 2))])
    assert eye_roll_degrees(landmarks) == pytest.approx(roll_deg, abs=1e-6)
    crop = level_crop(rolled, box, landmarks)
    assert crop.shape == (120, 120, 3)
    expected = upright[90:210, 90:210]
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 2.0
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(ys[xs < 60].mean() - ys[xs >= 60].mean()) < 1.0  # level


def test_align_faces_classifies_the_level_crop_in_the_pipeline():
    """align_faces:=true changes what the classifier sees for a rolled face (and only then): its batch is the
    level crop's."""
    from skimage import data

    from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rolled = cv2.warpAffine(photo, cv2.getRotationMatrix2D((220.0, 110.0), 20.0, 1.0), photo.shape[1::-1],
                            borderMode=cv2.BORDER_REPLICATE)
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detect_every_n=1, smoothing=0.0, align_faces=False))
    plain = pipeline.process(rolled)
    assert len(plain.faces) == 1, "the rolled astronaut's face was not found"
    face = plain.faces[0]
    pipeline.reconfigure(align_faces=True)
    aligned = pipeline.process(rolled)
    expected = pipeline.classifier.to_batch([level_crop(rolled, face.crop_box, face.detection.landmarks)])
    assert aligned.faces[0].crop_box == face.crop_box
    assert np.allclose(np.asarray(aligned.batch), np.asarray(expected))
    assert not np.allclose(np.asarray(aligned.batch), np.asarray(plain.batch))
    pipeline.close()


def test_align_face_refuses_bad_landmarks():
    frame = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="five"):
        align_face(frame, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="coincide"):
        align_face(frame, np.zeros((5, 2)))


def test_every_class_maps_to_an_expression_constant_and_a_circumplex_point():
    assert set(EXPRESSION_OF_CLASS) == set(EMOTIONS) == set(CIRCUMPLEX)
    assert set(EXPRESSION_OF_CLASS.values()) <= EXPRESSION_CONSTANTS
    assert all(-1.0 <= v <= 1.0 and -1.0 <= a <= 1.0 for v, a in CIRCUMPLEX.values())


def test_expression_sums_the_classes_of_one_constant():
    # disgust 0.3 + contempt 0.3 (both "disgusted") beat happy 0.4.
    probs = np.zeros(len(EMOTIONS))
    probs[[EMOTIONS.index("happy"), EMOTIONS.index("disgust"), EMOTIONS.index("contempt")]] = (0.4, 0.3, 0.3)
    name, confidence = expression(EMOTIONS, probs)
    assert name == "disgusted" and confidence == pytest.approx(0.6)
    name, confidence = expression(CKPLUS6, np.eye(6)[CKPLUS6.index("surprise")])
    assert name == "surprised" and confidence == pytest.approx(1.0)


def test_valence_arousal_is_the_weighted_circumplex_point_and_stays_in_range():
    assert valence_arousal(EMOTIONS, np.eye(8)[EMOTIONS.index("happy")]) == pytest.approx(CIRCUMPLEX["happy"])
    assert valence_arousal(EMOTIONS, np.eye(8)[EMOTIONS.index("sadness")]) == pytest.approx(CIRCUMPLEX["sadness"])
    rng = np.random.default_rng(0)
    for probs in rng.dirichlet(np.ones(8), size=200):
        v, a = valence_arousal(EMOTIONS, probs)
        assert -1.0 <= v <= 1.0 and -1.0 <= a <= 1.0
