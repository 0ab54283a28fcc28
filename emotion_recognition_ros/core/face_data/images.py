"""One labelled gray face on disk: the image suffixes we read, reading one, and the error that names the file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# What OpenCV decodes, lower case; a folder's other files (label.csv, README, ...) are not images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class DatasetError(ValueError):
    """The data does not match what was asked for; the message names the folder or file."""


@dataclass
class LabelledFace:
    image: np.ndarray  # uint8 gray, as stored (48x48 for CK+48 and FER+)
    label: str  # our class name (core/classes.py)
    subject: str | None  # the person's id where the layout carries one (CK+'s S<digits>), else None
    path: Path


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise DatasetError(f"{path}: unreadable or empty image")
    return image


def image_files(folder: Path) -> list[Path]:
    """The images directly in `folder`, sorted by name (so every run sees the same order)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
