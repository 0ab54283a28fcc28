"""FER2013's CSV: `emotion,pixels[,Usage]`, 48x48 gray pixels as space-separated numbers; no subject ids."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.classes import CKPLUS6

from .dataset import DatasetError, FaceDataset

FER2013_CLASSES = ("anger", "disgust", "fear", "happy", "sadness", "surprise", "neutral")  # label ids 0..6


def load_fer2013(csv_path: str | Path, classes: Sequence[str] | None = CKPLUS6,
                 usage: Sequence[str] | None = None) -> FaceDataset:
    """FER2013 rows whose label is in `classes` (names from FER2013_CLASSES) and Usage in `usage`."""
    csv_path = Path(csv_path).expanduser()
    classes = list(FER2013_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in FER2013_CLASSES]
    if unknown:
        raise DatasetError(f"{csv_path}: FER2013 has no class(es) {unknown}; it has {list(FER2013_CLASSES)}")
    wanted = {FER2013_CLASSES.index(c): i for i, c in enumerate(classes)}
    images, labels, paths = [], [], []
    try:
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"emotion", "pixels"} <= set(reader.fieldnames):
                raise DatasetError(f"{csv_path}: expected FER2013 columns 'emotion,pixels[,Usage]', "
                                   f"got {reader.fieldnames}")
            for row_no, row in enumerate(reader, start=2):
                if usage and row.get("Usage") not in usage:
                    continue
                label, image = _row(f"{csv_path}:{row_no}", row)
                if label in wanted:
                    images.append(image)
                    labels.append(wanted[label])
                    paths.append(f"{csv_path}:{row_no}")
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read ({exc})") from exc
    if not images:
        raise DatasetError(f"{csv_path}: no rows for classes {classes}" + (f" and Usage {list(usage)}" if usage else ""))
    missing = [c for i, c in enumerate(classes) if i not in set(labels)]
    if missing:
        raise DatasetError(f"{csv_path}: no rows of class(es) {missing}")
    return FaceDataset(images, np.asarray(labels, np.int64), classes, [None] * len(images), paths)


def _row(where: str, row: dict) -> tuple[int, np.ndarray]:
    """(FER2013 label id, uint8 square image) of one CSV row."""
    try:
        label = int(row["emotion"])
        pixels = np.asarray(row["pixels"].split(), np.float32)
    except (ValueError, AttributeError) as exc:
        raise DatasetError(f"{where}: bad row ({exc})") from exc
    side = int(round(np.sqrt(pixels.size)))
    if side * side != pixels.size or side == 0 or pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"{where}: {pixels.size} pixels is not a square 8-bit image")
    return label, pixels.reshape(side, side).astype(np.uint8)
