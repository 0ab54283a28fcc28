"""CK+48's layout, `<root>/<class>/S<subject>_<seq>_<frame>.png`; any class-folder tree reads the same way.

Subject ids come from CK+'s file names; files named otherwise carry none.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ..data_paths import dataset_path
from .images import DatasetError, LabelledFace, image_files, read_gray

# $EMOTION_DATA_DIR/ckplus48, else ../shared/data/ckplus48 (the demo's scenes, every training CLI)
DEFAULT_CKPLUS = dataset_path("ckplus48")
SUBJECT_RE = re.compile(r"^(S\d+)_")


def subject_id(path: Path) -> str | None:
    """CK+'s person id (`S005` of `S005_001_00000011.png`), or None for a file not named that way."""
    match = SUBJECT_RE.match(path.name)
    return match.group(1) if match else None


def read_class_folders(root: Path, classes: Sequence[str]) -> list[LabelledFace]:
    """Every image of `root/<class>/` for each of `classes`, in that order (files by name), read gray.

    The class folders must exist (callers check, with their own advice); an empty one is an error.
    """
    faces = []
    for name in classes:
        files = image_files(root / name)
        if not files:
            raise DatasetError(f"{root / name}: class folder holds no images")
        faces += [LabelledFace(read_gray(path), name, subject_id(path), path) for path in files]
    return faces
