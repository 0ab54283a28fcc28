"""Camera-like test frames: labelled faces (CK+ or FER+ Test) pasted onto textured backgrounds.

Used by tests, benchmarks and the demo. Reads faces from ../shared/data (or $EMOTION_DATA_DIR) at run time
(never copies them into the repository) and backgrounds from scikit-image's bundled sample images.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..core.data_paths import dataset_path
from ..core.model_io import DEFAULT_CLASSES

SUBJECT_RE = re.compile(r"^(S\d+)_")
DEFAULT_CKPLUS = dataset_path("ckplus48")  # $EMOTION_DATA_DIR/ckplus48, else ../shared/data/ckplus48
# Faces no shipped model trained on (the default model saw FER+ Train only): the demo's honest scenes.
DEFAULT_FERPLUS_TEST = dataset_path("ferplus") / "FER2013Test"


@dataclass
class LabelledFace:
    image: np.ndarray  # uint8 gray, as stored (48x48 for CK+48)
    label: str
    subject: str
    path: Path


@dataclass
class Scene:
    frame: np.ndarray  # uint8 BGR HxWx3
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (x, y, w, h) of each pasted face
    labels: list[str] = field(default_factory=list)
    faces: list[LabelledFace] = field(default_factory=list)


def subject_of(path: Path) -> str:
    match = SUBJECT_RE.match(path.name)
    return match.group(1) if match else path.stem


def load_faces(root: Path | str = DEFAULT_CKPLUS, classes: Sequence[str] = DEFAULT_CLASSES) -> list[LabelledFace]:
    """All images of `classes` under `root/<class>/`, sorted by path for reproducibility."""
    root = Path(root)
    faces = []
    for label in classes:
        for path in sorted((root / label).glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ValueError(f"{path}: unreadable image")
            faces.append(LabelledFace(image, label, subject_of(path), path))
    if not faces:
        raise FileNotFoundError(f"no face images for classes {list(classes)} under {root}")
    return faces


def load_ferplus_faces(root: Path | str = DEFAULT_FERPLUS_TEST, limit: int = 600) -> list[LabelledFace]:
    """FER+ faces with a majority label (the literature's protocol), the first `limit` in file order."""
    from training.datasets import DatasetError
    from training.ferplus import load_ferplus

    try:
        data = load_ferplus(root)
    except DatasetError as exc:
        raise FileNotFoundError(str(exc)) from exc
    keep = range(min(limit, len(data)))
    return [LabelledFace(data.images[i], data.class_names[int(data.labels[i])], Path(data.paths[i]).stem,
                         Path(data.paths[i])) for i in keep]


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured BGR background: a random crop of a scikit-image sample photo, blurred and tinted."""
    from skimage import data

    source = rng.choice(["coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"])
    rgb = getattr(data, source)()
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
