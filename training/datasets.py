"""Face-expression datasets as in-memory gray images with labels and (when known) subject ids.

Four layouts:
  * FER+: `<split>/label.csv` + `fer<row>.png` (see ferplus.py; majority or vote-distribution labels),
  * CK+48: `<root>/<class>/S<subject>_<seq>_<frame>.png` (subject ids parsed from the names),
  * any folder tree `<root>/<class>/<image>` (users' own data; subject ids only if names start `S<digits>_`),
  * FER2013's CSV (`emotion,pixels,Usage`, 48x48 gray pixels as space-separated numbers; no subject ids).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emotion_recognition_ros.core.data_paths import dataset_path
from emotion_recognition_ros.core.model_io import DEFAULT_CLASSES

# $EMOTION_DATA_DIR/ckplus48, else ../shared/data/ckplus48 (the default of every training CLI)
DEFAULT_CKPLUS = dataset_path("ckplus48")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
CKPLUS_SUBJECT_RE = re.compile(r"^(S\d+)_")
FER2013_CLASSES = ("anger", "disgust", "fear", "happy", "sadness", "surprise", "neutral")  # label ids 0..6


class DatasetError(ValueError):
    """The data does not match what was asked for; the message names the folder or file."""


@dataclass
class FaceDataset:
    images: list[np.ndarray]  # uint8 gray HxW, as stored
    labels: np.ndarray  # int64 index into class_names
    class_names: list[str]
    subjects: list[str | None]  # None where the layout carries no subject id
    paths: list[str] = field(default_factory=list)  # file (or "file:row") of each image
    targets: np.ndarray | None = None  # float32 (N, C) soft targets (e.g. FER+ vote distributions); None = one-hot
    dropped: dict[str, int] = field(default_factory=dict)  # rows the loader's protocol left out, by reason
    repeats: np.ndarray | None = None  # float32 (N,): expected draws per training epoch (dataset weights)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_subjects(self) -> bool:
        return len(self) > 0 and all(s is not None for s in self.subjects)

    def subset(self, index: Sequence[int] | np.ndarray) -> "FaceDataset":
        index = [int(i) for i in index]
        return FaceDataset([self.images[i] for i in index], self.labels[index], list(self.class_names),
                           [self.subjects[i] for i in index], [self.paths[i] for i in index],
                           None if self.targets is None else self.targets[index], dict(self.dropped),
                           None if self.repeats is None else self.repeats[index])

    def soft_targets(self) -> np.ndarray:
        """(N, C) float32 targets: the stored soft ones, else one-hot of the labels."""
        if self.targets is not None:
            return self.targets.astype(np.float32)
        return np.eye(len(self.class_names), dtype=np.float32)[self.labels]

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}

    def as_array(self, size: int) -> np.ndarray:
        """All images as one uint8 (N, size, size) array, shrunk like preprocess.resize_like_training."""
        out = np.empty((len(self), size, size), np.uint8)
        for i, image in enumerate(self.images):
            out[i] = image if image.shape == (size, size) else cv2.resize(
                image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] >= size else cv2.INTER_LINEAR)
        return out


def ckplus_subject(path: Path) -> str | None:
    match = CKPLUS_SUBJECT_RE.match(path.name)
    return match.group(1) if match else None


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise DatasetError(f"{path}: unreadable or empty image")
    return image


def load_folder(root: str | Path, classes: Sequence[str] | None = DEFAULT_CLASSES) -> FaceDataset:
    """Images under `root/<class>/`; `classes=None` takes every sub-folder (sorted) as a class.

    Class order is the order of `classes`: it becomes the model's output order.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder not found")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = present
    classes = list(classes)
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders")
    if len(set(classes)) != len(classes):
        raise DatasetError(f"class list {classes} names a class twice")
    missing = [c for c in classes if c not in present]
    if missing:
        raise DatasetError(f"{root}: no folder for class(es) {missing}; the data has {present} "
                           "(pick classes with --classes)")
    images, labels, subjects, paths = [], [], [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{root / name}: class folder holds no images")
        for path in files:
            images.append(read_gray(path))
            labels.append(index)
            subjects.append(ckplus_subject(path))
            paths.append(str(path))
    # A mix of named and unnamed files would make "grouped" splits quietly leaky: treat it as no ids.
    if any(s is None for s in subjects):
        subjects = [None] * len(subjects)
    return FaceDataset(images, np.asarray(labels, np.int64), classes, subjects, paths)


def load_fer2013(csv_path: str | Path, classes: Sequence[str] | None = DEFAULT_CLASSES,
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
                try:
                    label = int(row["emotion"])
                    pixels = np.asarray(row["pixels"].split(), np.float32)
                except (ValueError, AttributeError) as exc:
                    raise DatasetError(f"{csv_path}:{row_no}: bad row ({exc})") from exc
                side = int(round(np.sqrt(pixels.size)))
                if side * side != pixels.size or side == 0 or pixels.min() < 0 or pixels.max() > 255:
                    raise DatasetError(f"{csv_path}:{row_no}: {pixels.size} pixels is not a square 8-bit image")
                if label in wanted:
                    images.append(pixels.reshape(side, side).astype(np.uint8))
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


def load_dataset(path: str | Path, classes: Sequence[str] | None = DEFAULT_CLASSES,
                 scheme: str = "majority") -> FaceDataset:
    """A FER+ split folder (has label.csv; `scheme` majority|soft), a folder tree, or a FER2013 CSV (.csv)."""
    from .ferplus import is_ferplus, load_ferplus

    path = Path(path).expanduser()
    if path.suffix.lower() == ".csv":
        return load_fer2013(path, classes)
    if is_ferplus(path):
        return load_ferplus(path, classes, scheme)
    return load_folder(path, classes)


def load_mixture(paths: Sequence[str | Path], classes: Sequence[str], weights: Sequence[float] | None = None,
                 scheme: str = "majority") -> FaceDataset:
    """Several datasets as one, labelled in `classes` (our vocabulary), each drawn `weight` times per epoch.

    A dataset may hold only some of `classes` (CK+ has no neutral); together they must cover all of them.
    weight 1 = each of its images once per epoch; 2 = twice on average; 0.5 = a random half.
    """
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise DatasetError(f"{len(weights)} dataset weights for {len(paths)} datasets")
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise DatasetError(f"dataset weights {weights} must be >= 0 with at least one > 0")
    parts = []
    for path, weight in zip(paths, weights):
        part = load_dataset(path, [c for c in classes if c in _classes_in(Path(path))], scheme)
        to_ours = np.array([list(classes).index(c) for c in part.class_names])
        soft = np.zeros((len(part), len(classes)), np.float32)
        soft[:, to_ours] = part.soft_targets()
        parts.append((part, to_ours[part.labels], soft, np.full(len(part), weight, np.float32)))
    covered = {int(i) for _, labels, _, _ in parts for i in np.unique(labels)}
    missing = [c for i, c in enumerate(classes) if i not in covered]
    if missing:
        raise DatasetError(f"no dataset among {[str(p) for p in paths]} has class(es) {missing}")
    dropped = {f"{path}:{k}": v for (part, *_), path in zip(parts, paths) for k, v in part.dropped.items()}
    return FaceDataset([im for p, *_ in parts for im in p.images], np.concatenate([x[1] for x in parts]),
                       list(classes), [s for p, *_ in parts for s in p.subjects], [q for p, *_ in parts for q in p.paths],
                       targets=np.concatenate([x[2] for x in parts]), dropped=dropped,
                       repeats=np.concatenate([x[3] for x in parts]))


def _classes_in(path: Path) -> list[str]:
    """Class names a dataset can provide: FER+'s eight emotions, or a folder tree's sub-folders."""
    from emotion_recognition_ros.core.classes import EMOTIONS

    from .ferplus import is_ferplus

    path = path.expanduser()
    if is_ferplus(path):
        return list(EMOTIONS)
    if path.suffix.lower() == ".csv":
        return list(FER2013_CLASSES)
    if not path.is_dir():
        raise DatasetError(f"{path}: data folder not found")
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
