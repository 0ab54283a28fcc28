"""Several datasets as one training set, labelled in one vocabulary, each drawn a given number of times per epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .dataset import DatasetError, FaceDataset
from .layouts import classes_in, load_dataset


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
        part = load_dataset(path, [c for c in classes if c in classes_in(path)], scheme)
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
