"""FER+ training sets, on the runtime's label.csv reader (emotion_recognition_ros/core/face_data/ferplus.py).

Two label schemes:
  * `majority` (the literature's protocol): a unique maximum among the 10 vote counts, and that maximum is one
    of the 8 emotions. Ties, unknown and not-a-face (NF) are dropped, and so are faces whose class the caller
    did not ask for (e.g. neutral for a six-class model). FER2013Test keeps 3,371 faces over the 8 emotions.
  * `soft`: the vote distribution over the asked-for emotions as a soft target (ties kept: that is the point);
    dropped: faces whose maximum is only unknown / NF, and faces whose most-voted emotion was not asked for.

What was dropped, and why, is counted in `FaceDataset.dropped`; nothing else is left out. A malformed
label.csv row, a missing or unreadable image, or a split with nothing left stops with an error naming the
file and line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.classes import EMOTIONS, FERPLUS_VOTE_COLUMNS
from emotion_recognition_ros.core.face_data.ferplus import (LABEL_FILE, VOTE_CLASS, LabelRow, image_path,
                                                             majority_class, read_face, read_labels)

from .dataset import DatasetError, FaceDataset

SCHEMES = ("majority", "soft")


def vote_distribution(votes: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray | None, str]:
    """(votes over `classes` normalised to 1, '') or (None, reason it is dropped)."""
    top = votes.max()
    if top == 0:
        return None, "no_votes"
    if all(VOTE_CLASS[i] is None for i in np.flatnonzero(votes == top)):
        return None, FERPLUS_VOTE_COLUMNS[int(np.argmax(votes))]
    emotions = [i for i, c in enumerate(VOTE_CLASS) if c is not None]
    top_emotions = {VOTE_CLASS[i] for i in emotions if votes[i] == votes[emotions].max()}
    if not top_emotions & set(classes):  # e.g. a clear fear face for a model without fear
        return None, f"class_not_asked:{sorted(top_emotions)[0]}"
    counts = np.array([votes[VOTE_CLASS.index(c)] for c in classes], np.float32)
    return counts / counts.sum(), ""


def _label(row: LabelRow, classes: list[str], scheme: str) -> tuple[str | None, np.ndarray | None, str]:
    """(class name, soft target or None, '') for a kept row, else (None, None, reason it is dropped)."""
    if scheme == "majority":
        label, reason = majority_class(row.votes)
        if label is not None and label not in classes:
            return None, None, f"class_not_asked:{label}"
        return label, None, reason
    target, reason = vote_distribution(row.votes, classes)
    return (None if target is None else classes[int(np.argmax(target))]), target, reason


def load_ferplus(root: str | Path, classes: Sequence[str] | None = EMOTIONS, scheme: str = "majority") -> FaceDataset:
    """One FER+ split folder. `classes` (our names, output order) default: the 8 emotions."""
    root = Path(root).expanduser()
    if scheme not in SCHEMES:
        raise DatasetError(f"unknown FER+ label scheme '{scheme}' (choose from {list(SCHEMES)})")
    classes = list(EMOTIONS if classes is None else classes)
    unknown = [c for c in classes if c not in VOTE_CLASS]
    if unknown:
        raise DatasetError(f"{root}: FER+ has no class(es) {unknown}; it has {list(EMOTIONS)}")
    label_csv = root / LABEL_FILE
    if not label_csv.is_file():
        raise DatasetError(f"{label_csv}: FER+ label file not found")
    images, labels, targets, paths = [], [], [], []
    dropped: dict[str, int] = {}
    for row in read_labels(label_csv):
        path = image_path(root, row)
        label, target, reason = _label(row, classes, scheme)
        if label is None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        images.append(read_face(path, row))
        labels.append(classes.index(label))
        targets.append(target)
        paths.append(str(path))
    if not images:
        raise DatasetError(f"{label_csv}: empty split: no row has a {scheme} label among {classes} "
                           f"(dropped: {dropped})")
    return FaceDataset(images, np.asarray(labels, np.int64), classes, [None] * len(images), paths,
                       targets=np.stack(targets) if scheme == "soft" else None, dropped=dropped)
