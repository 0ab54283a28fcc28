"""Class-folder trees, `<root>/<class>/<image>`: CK+48 and users' own data.

Subject ids only where every file is named like CK+'s (`S<digits>_...`); see core/face_data/ckplus.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.classes import CKPLUS6
from emotion_recognition_ros.core.face_data.ckplus import read_class_folders

from .dataset import DatasetError, FaceDataset


def class_folders(root: Path) -> list[str]:
    """The sub-folders of `root` (sorted, hidden ones left out): the classes a folder tree can provide."""
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder not found")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder(root: str | Path, classes: Sequence[str] | None = CKPLUS6) -> FaceDataset:
    """Images under `root/<class>/`; `classes=None` takes every sub-folder (sorted) as a class.

    Class order is the order of `classes`: it becomes the model's output order.
    """
    root = Path(root).expanduser()
    present = class_folders(root)
    classes = list(present if classes is None else classes)
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders")
    if len(set(classes)) != len(classes):
        raise DatasetError(f"class list {classes} names a class twice")
    missing = [c for c in classes if c not in present]
    if missing:
        raise DatasetError(f"{root}: no folder for class(es) {missing}; the data has {present} "
                           "(pick classes with --classes)")
    faces = read_class_folders(root, classes)
    subjects = [face.subject for face in faces]
    # A mix of named and unnamed files would make "grouped" splits quietly leaky: treat it as no ids.
    if any(s is None for s in subjects):
        subjects = [None] * len(subjects)
    return FaceDataset([face.image for face in faces], np.asarray([classes.index(f.label) for f in faces], np.int64),
                       classes, subjects, [str(face.path) for face in faces])
