"""Train/val/test splits: the study's random per-image split, and subject-independent k-fold.

`random` reproduces the study exactly: sklearn `train_test_split(..., test_size=0.3, random_state=3)` then the
30% split in half with the same call again (70/15/15). The study's code passes no `stratify`, so neither do
we by default (`stratify=True` is offered). Frames of one person land on both sides: scores are optimistic.

`subject` is grouped k-fold (`StratifiedGroupKFold` by subject): the test fold's people are never seen in
training, and validation is another subject-held-out fold taken from the remaining people.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from .dataset import DatasetError, FaceDataset

STUDY_RANDOM_STATE = 3


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str

    def check_disjoint(self) -> None:
        a, b, c = (set(map(int, s)) for s in (self.train, self.val, self.test))
        if a & b or a & c or b & c:
            raise AssertionError(f"split {self.name}: index sets overlap")


def random_split(n: int, labels: np.ndarray | None = None, seed: int = STUDY_RANDOM_STATE,
                 stratify: bool = False) -> Split:
    """The study's 70/15/15 per-image split (indices into the dataset order)."""
    index = np.arange(n)
    train, rest = train_test_split(index, test_size=0.3, random_state=seed,
                                   stratify=labels if stratify else None)
    val, test = train_test_split(rest, test_size=0.5, random_state=seed,
                                 stratify=labels[rest] if stratify else None)
    return Split(np.asarray(train), np.asarray(val), np.asarray(test), f"random(seed={seed},stratify={stratify})")


def subject_groups(data: FaceDataset) -> np.ndarray:
    if not data.has_subjects:
        example = data.paths[0] if data.paths else "<empty>"
        raise DatasetError(
            f"subject-independent split needs a subject id for every image, but e.g. '{example}' has none "
            "(CK+ names start 'S<digits>_'); refusing to fall back to a per-image split, which would put the "
            "same person in train and test. Use --split random explicitly if that is what you want.")
    return np.asarray(data.subjects)


def subject_folds(data: FaceDataset, k: int = 10, seed: int = 0) -> list[np.ndarray]:
    """k disjoint test folds of subjects, stratified by class as far as whole subjects allow."""
    groups = subject_groups(data)
    if len(set(groups)) < k:
        raise DatasetError(f"{len(set(groups))} subjects cannot make {k} subject folds")
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [np.asarray(test) for _, test in sgkf.split(np.zeros(len(data)), data.labels, groups)]


def subject_split(data: FaceDataset, k: int = 10, fold: int = 0, seed: int = 0, val: bool = True) -> Split:
    """Fold `fold` of subject k-fold: test = that fold; val = the next fold (also unseen people) or empty."""
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is outside 0..{k - 1}")
    folds = subject_folds(data, k, seed)
    test = folds[fold]
    val_idx = folds[(fold + 1) % k] if val else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(data)), np.concatenate([test, val_idx]))
    return Split(train, val_idx, test, f"subject(k={k},fold={fold},seed={seed},val={val})")


def subjects_of(data: FaceDataset, index: np.ndarray) -> set[str]:
    return {data.subjects[int(i)] for i in index}
