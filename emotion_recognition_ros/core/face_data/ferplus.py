"""FER+ (Barsoum et al., ICMI 2016) split folders, in the layout Microsoft's FERPlus tools generate.

    <split>/fer<row>.png ...
    <split>/label.csv   no header: image name, face box "(x, y, w, h)", then 10 vote counts:
                        neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF

This module reads the files and applies the literature's majority rule; training/data/ferplus_labels.py builds
training sets on it (label schemes, counts of what was dropped). A malformed label.csv row, or a missing or
unreadable image, stops with an error naming the file and line.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..classes import FERPLUS_NON_EMOTIONS, FERPLUS_VOTE_COLUMNS, map_names
from ..data_paths import dataset_path
from .images import DatasetError, LabelledFace, read_gray

# Faces no shipped model trained on (the default model saw FER+ Train only): the demo's honest scenes.
DEFAULT_FERPLUS_TEST = dataset_path("ferplus") / "FER2013Test"
LABEL_FILE = "label.csv"
N_COLUMNS = 2 + len(FERPLUS_VOTE_COLUMNS)
_BOX_RE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")
# Vote column index -> our class name (None for unknown / NF).
VOTE_CLASS = [None if c in FERPLUS_NON_EMOTIONS else map_names([c], "ferplus")[0] for c in FERPLUS_VOTE_COLUMNS]


class LabelRow(NamedTuple):
    where: str  # "<label.csv>:<line>", the prefix of every error about this row
    name: str  # image file name, relative to the split folder
    box: tuple[int, int, int, int]  # face box (x, y, w, h) in the image
    votes: np.ndarray  # the 10 vote counts, int64, in FERPLUS_VOTE_COLUMNS order


def is_ferplus(root: str | Path) -> bool:
    """True for a folder holding FER+'s label.csv (how a FER+ split is told from a class-folder tree)."""
    return (Path(root).expanduser() / LABEL_FILE).is_file()


def read_labels(label_csv: str | Path) -> list[LabelRow]:
    """The rows of a label.csv, validated."""
    label_csv = Path(label_csv)
    rows = []
    try:
        with open(label_csv, newline="") as fh:
            for line_no, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue  # a trailing blank line
                rows.append(_label_row(f"{label_csv}:{line_no}", row))
    except OSError as exc:
        raise DatasetError(f"{label_csv}: cannot read ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{label_csv}: not a text file ({exc})") from exc
    if not rows:
        raise DatasetError(f"{label_csv}: empty split (no label rows)")
    return rows


def _label_row(where: str, row: list[str]) -> LabelRow:
    if len(row) != N_COLUMNS:
        raise DatasetError(f"{where}: {len(row)} columns, expected {N_COLUMNS} "
                           f"(image name, face box, {len(FERPLUS_VOTE_COLUMNS)} vote counts)")
    box = _BOX_RE.match(row[1].strip())
    if not box:
        raise DatasetError(f"{where}: face box '{row[1]}' is not '(x, y, w, h)'")
    try:
        votes = np.array([int(cell) for cell in row[2:]], np.int64)
    except ValueError as exc:
        raise DatasetError(f"{where}: vote counts must be whole numbers ({exc})") from exc
    if (votes < 0).any():
        raise DatasetError(f"{where}: negative vote count")
    return LabelRow(where, row[0].strip(), tuple(int(v) for v in box.groups()), votes)


def majority_class(votes: np.ndarray) -> tuple[str | None, str]:
    """(our class name, '') for a unique maximum on an emotion, else (None, reason it is dropped)."""
    top = votes.max()
    winners = np.flatnonzero(votes == top)
    if top == 0:
        return None, "no_votes"
    if len(winners) > 1:
        return None, "tie"
    name = VOTE_CLASS[int(winners[0])]
    if name is None:
        return None, FERPLUS_VOTE_COLUMNS[int(winners[0])]
    return name, ""


def image_path(root: Path, row: LabelRow) -> Path:
    """The row's image file, which must exist."""
    path = root / row.name
    if not path.is_file():
        raise DatasetError(f"{row.where}: image '{row.name}' not found in {root}")
    return path


def read_face(path: Path, row: LabelRow) -> np.ndarray:
    """The row's face: its image, read gray and cut to its face box."""
    try:
        image = read_gray(path)
        x, y, w, h = row.box
        if (x, y, w, h) == (0, 0, image.shape[1], image.shape[0]):
            return image
        if w <= 0 or h <= 0 or x + w > image.shape[1] or y + h > image.shape[0]:
            raise DatasetError(f"face box {row.box} does not fit the {image.shape[1]}x{image.shape[0]} image")
        return image[y:y + h, x:x + w]
    except DatasetError as exc:
        raise DatasetError(f"{row.where}: {exc}") from exc


def majority_faces(root: str | Path = DEFAULT_FERPLUS_TEST, limit: int | None = None) -> list[LabelledFace]:
    """The split's faces that have a majority label (the literature's protocol), the first `limit` in file order."""
    root = Path(root).expanduser()
    label_csv = root / LABEL_FILE
    if not label_csv.is_file():
        raise DatasetError(f"{label_csv}: FER+ label file not found")
    faces = []
    for row in read_labels(label_csv):
        if limit is not None and len(faces) >= limit:
            break
        path = image_path(root, row)
        label, _ = majority_class(row.votes)
        if label is not None:
            faces.append(LabelledFace(read_face(path, row), label, None, path))
    if not faces:
        raise DatasetError(f"{label_csv}: empty split: no row has a majority label")
    return faces
