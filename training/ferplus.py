"""FER+ (Barsoum et al., ICMI 2016) in the layout Microsoft's FERPlus tools generate.

    <split>/fer<row>.png ...
    <split>/label.csv   no header: image name, face box "(x, y, w, h)", then 10 vote counts:
                        neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF

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

import csv
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.classes import EMOTIONS, FERPLUS_NON_EMOTIONS, FERPLUS_VOTE_COLUMNS, map_names

from .datasets import DatasetError, FaceDataset, read_gray

LABEL_FILE = "label.csv"
SCHEMES = ("majority", "soft")
N_COLUMNS = 2 + len(FERPLUS_VOTE_COLUMNS)
_BOX_RE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")
# Vote column index -> our class name (None for unknown / NF).
_VOTE_CLASS = [None if c in FERPLUS_NON_EMOTIONS else map_names([c], "ferplus")[0] for c in FERPLUS_VOTE_COLUMNS]


def is_ferplus(root: str | Path) -> bool:
    """True for a folder holding FER+'s label.csv (how load_dataset recognises the layout)."""
    return (Path(root).expanduser() / LABEL_FILE).is_file()


def read_labels(label_csv: str | Path) -> list[tuple[int, str, tuple[int, int, int, int], np.ndarray]]:
    """(line number, image name, face box, 10 votes as int64) per row, validated."""
    label_csv = Path(label_csv)
    rows = []
    try:
        with open(label_csv, newline="") as fh:
            for line_no, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue  # a trailing blank line
                if len(row) != N_COLUMNS:
                    raise DatasetError(f"{label_csv}:{line_no}: {len(row)} columns, expected {N_COLUMNS} "
                                       f"(image name, face box, {len(FERPLUS_VOTE_COLUMNS)} vote counts)")
                box = _BOX_RE.match(row[1].strip())
                if not box:
                    raise DatasetError(f"{label_csv}:{line_no}: face box '{row[1]}' is not '(x, y, w, h)'")
                try:
                    votes = np.array([int(cell) for cell in row[2:]], np.int64)
                except ValueError as exc:
                    raise DatasetError(f"{label_csv}:{line_no}: vote counts must be whole numbers ({exc})") from exc
                if (votes < 0).any():
                    raise DatasetError(f"{label_csv}:{line_no}: negative vote count")
                rows.append((line_no, row[0].strip(), tuple(int(v) for v in box.groups()), votes))
    except OSError as exc:
        raise DatasetError(f"{label_csv}: cannot read ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{label_csv}: not a text file ({exc})") from exc
    if not rows:
        raise DatasetError(f"{label_csv}: empty split (no label rows)")
    return rows


def majority_class(votes: np.ndarray) -> tuple[str | None, str]:
    """(our class name, '') for a unique maximum on an emotion, else (None, reason it is dropped)."""
    top = votes.max()
    winners = np.flatnonzero(votes == top)
    if top == 0:
        return None, "no_votes"
    if len(winners) > 1:
        return None, "tie"
    name = _VOTE_CLASS[int(winners[0])]
    if name is None:
        return None, FERPLUS_VOTE_COLUMNS[int(winners[0])]
    return name, ""


def vote_distribution(votes: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray | None, str]:
    """(votes over `classes` normalised to 1, '') or (None, reason it is dropped)."""
    top = votes.max()
    if top == 0:
        return None, "no_votes"
    if all(_VOTE_CLASS[i] is None for i in np.flatnonzero(votes == top)):
        return None, FERPLUS_VOTE_COLUMNS[int(np.argmax(votes))]
    emotions = [i for i, c in enumerate(_VOTE_CLASS) if c is not None]
    top_emotions = {_VOTE_CLASS[i] for i in emotions if votes[i] == votes[emotions].max()}
    if not top_emotions & set(classes):  # e.g. a clear fear face for a model without fear
        return None, f"class_not_asked:{sorted(top_emotions)[0]}"
    counts = np.array([votes[_VOTE_CLASS.index(c)] for c in classes], np.float32)
    return counts / counts.sum(), ""


def _crop(image: np.ndarray, box: tuple[int, int, int, int], where: str) -> np.ndarray:
    x, y, w, h = box
    if (x, y, w, h) == (0, 0, image.shape[1], image.shape[0]):
        return image
    if w <= 0 or h <= 0 or x + w > image.shape[1] or y + h > image.shape[0]:
        raise DatasetError(f"{where}: face box {box} does not fit the {image.shape[1]}x{image.shape[0]} image")
    return image[y:y + h, x:x + w]


def load_ferplus(root: str | Path, classes: Sequence[str] | None = EMOTIONS, scheme: str = "majority") -> FaceDataset:
    """One FER+ split folder. `classes` (our names, output order) default: the 8 emotions."""
    root = Path(root).expanduser()
    if scheme not in SCHEMES:
        raise DatasetError(f"unknown FER+ label scheme '{scheme}' (choose from {list(SCHEMES)})")
    classes = list(EMOTIONS if classes is None else classes)
    unknown = [c for c in classes if c not in _VOTE_CLASS]
    if unknown:
        raise DatasetError(f"{root}: FER+ has no class(es) {unknown}; it has {list(EMOTIONS)}")
    label_csv = root / LABEL_FILE
    if not label_csv.is_file():
        raise DatasetError(f"{label_csv}: FER+ label file not found")
    images, labels, targets, paths = [], [], [], []
    dropped: dict[str, int] = {}
    for line_no, name, box, votes in read_labels(label_csv):
        where = f"{label_csv}:{line_no}"
        image_path = root / name
        if not image_path.is_file():
            raise DatasetError(f"{where}: image '{name}' not found in {root}")
        if scheme == "majority":
            label, reason = majority_class(votes)
            if label is not None and label not in classes:
                label, reason = None, f"class_not_asked:{label}"
            target = None
        else:
            target, reason = vote_distribution(votes, classes)
            label = None if target is None else classes[int(np.argmax(target))]
        if label is None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        try:
            images.append(_crop(read_gray(image_path), box, where))
        except DatasetError as exc:
            raise DatasetError(f"{where}: {exc}") from exc
        labels.append(classes.index(label))
        targets.append(target)
        paths.append(str(image_path))
    if not images:
        raise DatasetError(f"{label_csv}: empty split: no row has a {scheme} label among {classes} "
                           f"(dropped: {dropped})")
    return FaceDataset(images, np.asarray(labels, np.int64), classes, [None] * len(images), paths,
                       targets=np.stack(targets) if scheme == "soft" else None, dropped=dropped)
