"""Which layout a path holds (FER+ split, FER2013 CSV, class-folder tree), and loading it by that."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from emotion_recognition_ros.core.classes import CKPLUS6, EMOTIONS
from emotion_recognition_ros.core.face_data.ferplus import is_ferplus

from .dataset import FaceDataset
from .fer2013 import FER2013_CLASSES, load_fer2013
from .ferplus_labels import load_ferplus
from .folders import class_folders, load_folder


def load_dataset(path: str | Path, classes: Sequence[str] | None = CKPLUS6,
                 scheme: str = "majority") -> FaceDataset:
    """A FER+ split folder (has label.csv; `scheme` majority|soft), a folder tree, or a FER2013 CSV (.csv)."""
    path = Path(path).expanduser()
    if path.suffix.lower() == ".csv":
        return load_fer2013(path, classes)
    if is_ferplus(path):
        return load_ferplus(path, classes, scheme)
    return load_folder(path, classes)


def classes_in(path: str | Path) -> list[str]:
    """Class names a dataset can provide: FER+'s eight emotions, FER2013's seven, or a folder tree's sub-folders."""
    path = Path(path).expanduser()
    if is_ferplus(path):
        return list(EMOTIONS)
    if path.suffix.lower() == ".csv":
        return list(FER2013_CLASSES)
    return class_folders(path)
