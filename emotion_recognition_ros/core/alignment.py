"""Face alignment from five landmarks: a crop whose eyes are level, at fixed places, at a fixed size.

A similarity transform (rotation, uniform scale, shift) moves the two eye centres to `EYE_ROW` of the output
height, `EYE_GAP` of its width apart and centred left-right: whatever the face's roll and size, the output has
the same geometry, which is what REP-155's `aligned` image and downstream recognisers (face ids, action units)
expect. Landmarks are MTCNN's five, x, y in frame pixels: left eye, right eye, nose, mouth left, mouth right
("left" = the image's left, the person's right eye).
"""
from __future__ import annotations

import cv2
import numpy as np

EYE_ROW = 0.4  # eye line height, fraction of the output height from the top
EYE_GAP = 0.36  # distance between the eye centres, fraction of the output width


def level_eyes_transform(left_eye: np.ndarray, right_eye: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine matrix taking frame pixels to a `size` x `size` crop with level eyes at fixed places."""
    left, right = np.asarray(left_eye, np.float64), np.asarray(right_eye, np.float64)
    dx, dy = right - left
    distance = float(np.hypot(dx, dy))
    if distance < 1e-6:
        raise ValueError("the eye landmarks coincide: no alignment can be computed")
    angle = np.arctan2(dy, dx)  # the face's roll: 0 when the eyes are level
    scale = EYE_GAP * size / distance
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotate = np.array([[cos, -sin], [sin, cos]])
    target = np.array([size / 2.0, EYE_ROW * size])
    shift = target - rotate @ ((left + right) / 2.0)
    return np.hstack([rotate, shift[:, None]])


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int = 128) -> np.ndarray:
    """The face with level eyes as a `size` x `size` crop of `frame` (borders outside the frame replicated).
    `landmarks`: (5, 2) MTCNN points; only the eyes are used."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"align_face needs MTCNN's five (x, y) landmarks, got shape {points.shape}")
    matrix = level_eyes_transform(points[0], points[1], size)
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`points` (N, 2) mapped by a 2x3 affine `matrix`."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def eye_roll_degrees(landmarks: np.ndarray) -> float:
    """The head's roll in the image, degrees: the eye line's angle (positive when the image's right eye is lower)."""
    (lx, ly), (rx, ry) = np.asarray(landmarks, np.float64)[:2]
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


def rotated_crop(image: np.ndarray, box: tuple[float, float, float, float], degrees: float) -> np.ndarray:
    """The square `box` (x, y, side, side) of `image` after rotating the image about the box centre by `degrees`
    (counter-clockwise, as cv2.getRotationMatrix2D); borders outside the image are replicated."""
    x, y, side, _ = box
    matrix = cv2.getRotationMatrix2D((x + side / 2.0, y + side / 2.0), degrees, 1.0)
    matrix[:, 2] -= (x, y)  # then shift the box's corner to the crop's origin
    size = max(1, int(round(side)))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def level_crop(frame: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray) -> np.ndarray:
    """The square `box` (x, y, side, side) of `frame`, the frame first rotated about the box centre so the eyes
    are level. Scale and position stay the detector's, so a rolled head gives the crop an upright one would: the
    geometry the classifier was trained on (FER+ faces are upright). Borders outside the frame are replicated."""
    return rotated_crop(frame, box, eye_roll_degrees(landmarks))
