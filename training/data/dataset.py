"""The training set every loader returns: gray images, labels, subject ids, and what the protocol left out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from emotion_recognition_ros.core.face_data.images import DatasetError

__all__ = ["DatasetError", "FaceDataset"]


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
    notes: list[str] = field(default_factory=list)  # what was done to the images after loading (e.g. levelled)

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
                           None if self.repeats is None else self.repeats[index], list(self.notes))

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
