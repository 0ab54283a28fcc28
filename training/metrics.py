"""Classification scores written by evaluate/train/cv (plain numpy; no hidden averaging choices)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def score(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict:
    """accuracy, macro_f1, n, per_class {precision, recall, f1, support}, confusion (rows true)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    matrix = confusion(y_true, y_pred, len(class_names))
    per_class, f1s = {}, []
    for i, name in enumerate(class_names):
        tp = int(matrix[i, i])
        predicted, support = int(matrix[:, i].sum()), int(matrix[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support:  # classes absent from the data do not drag macro-F1 down
            f1s.append(f1)
    n = int(len(y_true))
    return {"accuracy": float((y_true == y_pred).mean()) if n else 0.0,
            "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "n": n, "class_names": list(class_names), "per_class": per_class, "confusion": matrix.tolist()}
