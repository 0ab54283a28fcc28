"""Camera-like test frames: labelled faces (CK+ or FER+ Test) pasted onto textured backgrounds.

Used by tests, benchmarks and the demo. Reads faces from ../shared/data (or $EMOTION_DATA_DIR) at run time
(never copies them into the repository) and backgrounds from scikit-image's bundled sample images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from skimage import data as skimage_data

from ..core.classes import CKPLUS6
from ..core.face_data.ckplus import DEFAULT_CKPLUS, read_class_folders
from ..core.face_data.ferplus import DEFAULT_FERPLUS_TEST, majority_faces
from ..core.face_data.images import DatasetError, LabelledFace

@dataclass
class Scene:
    frame: np.ndarray  # uint8 BGR HxWx3
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (x, y, w, h) of each pasted face
    labels: list[str] = field(default_factory=list)
    faces: list[LabelledFace] = field(default_factory=list)


def load_faces(root: Path | str = DEFAULT_CKPLUS, classes: Sequence[str] = CKPLUS6) -> list[LabelledFace]:
    """The images of those of `classes` that have a folder under `root` (CK+48 has no neutral), by path."""
    root = Path(root)
    present = [label for label in classes if (root / label).is_dir()]
    faces = read_class_folders(root, present)
    if not faces:
        raise FileNotFoundError(f"no face images for classes {list(classes)} under {root}")
    return faces


def load_ferplus_faces(root: Path | str = DEFAULT_FERPLUS_TEST, limit: int = 600) -> list[LabelledFace]:
    """FER+ faces with a majority label (the literature's protocol), the first `limit` in file order."""
    try:
        return majority_faces(root, limit)
    except DatasetError as exc:
        raise FileNotFoundError(str(exc)) from exc


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured BGR background: a random crop of a scikit-image sample photo, blurred and tinted."""
    source = rng.choice(["coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"])
    rgb = getattr(skimage_data, source)()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR)
    bgr = cv2.resize(bgr, (max(width, bgr.shape[1]), max(height, bgr.shape[0])))
    y = int(rng.integers(0, bgr.shape[0] - height + 1))
    x = int(rng.integers(0, bgr.shape[1] - width + 1))
    tile = cv2.GaussianBlur(bgr[y:y + height, x:x + width], (0, 0), 3)
    return np.clip(tile * rng.uniform(0.6, 1.0), 0, 255).astype(np.uint8)


def _place(width: int, height: int, size: int, taken: list[tuple[int, int, int, int]],
           rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    for _ in range(100):
        x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
        if all(x + size <= bx or bx + bw <= x or y + size <= by or by + bh <= y for bx, by, bw, bh in taken):
            return x, y, size, size
    return None


def make_scene(faces: Sequence[LabelledFace], width: int = 640, height: int = 480,
               face_size: tuple[int, int] = (100, 180), rng: np.random.Generator | int | None = 0) -> Scene:
    """Paste `faces` (upscaled to a random size in `face_size`) at non-overlapping places of a background."""
    rng = np.random.default_rng(rng)
    scene = Scene(background(width, height, rng))
    for face in faces:
        size = int(rng.integers(face_size[0], face_size[1] + 1))
        box = _place(width, height, size, scene.boxes, rng)
        if box is None:
            raise ValueError(f"cannot fit {len(faces)} faces of {face_size} px into {width}x{height}")
        x, y, w, h = box
        patch = cv2.resize(face.image, (w, h), interpolation=cv2.INTER_LINEAR)
        scene.frame[y:y + h, x:x + w] = cv2.cvtColor(patch, cv2.COLOR_GRAY2BGR)
        scene.boxes.append(box)
        scene.labels.append(face.label)
        scene.faces.append(face)
    return scene
