"""Stand-in faces for a clone without ../shared: crops of scikit-image's astronaut photo (a real face, installed
with the package's dependencies), varied so that no two in a row are the same image.

They have the CK+ faces' layout (gray, face filling the crop, a list indexed like load_faces' 981) but their
labels are made up, cycling over the six CK+ classes: a test that needs only *a* face uses them; a test that
scores accuracy against labels needs the real data (conftest.labelled_faces).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotion_recognition_ros.core.classes import CKPLUS6
from emotion_recognition_ros.media.scenes import LabelledFace
from emotion_recognition_ros.media.sources import ASTRONAUT_FACE

COUNT = 981  # as many as CK+48's six classes, so tests index both alike
SIDE = 96


def astronaut_faces(count: int = COUNT) -> list[LabelledFace]:
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    x, y, w, h = ASTRONAUT_FACE
    cx, cy, side = x + w / 2, y + h / 2, 0.8 * max(w, h)  # the face fills the crop, as in CK+48
    faces = []
    for i in range(count):
        angle = (i % 5 - 2) * 2.5  # -5..5 degrees: within what MTCNN finds upright
        zoom = 1.0 + ((i // 5) % 4) * 0.04
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, SIDE / (side * zoom))
        matrix[:, 2] += (SIDE / 2 - cx, SIDE / 2 - cy)
        face = cv2.warpAffine(gray, matrix, (SIDE, SIDE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        if (i // 20) % 2:
            face = cv2.flip(face, 1)
        gain = 0.8 + 0.1 * ((i // 40) % 4)
        face = np.clip(face.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        label = CKPLUS6[(i * len(CKPLUS6)) // count]  # in blocks, like load_faces' class order
        faces.append(LabelledFace(face, label, f"astronaut{i // 60}", Path(f"astronaut/{i:04d}.png")))
    return faces
