"""`prior_correction`, the classifier's operating point: how far its outputs are moved from the training
data's class prior.

A model trained on FER+ learns FER+'s prior (neutral is its largest class), so a subtle expression whose
evidence is weak comes out as "neutral". Dividing the probabilities by the training prior raised to a power
`s` = prior_correction (logit adjustment: logits/T - s * log(prior)) trades that: s = 0 is the trained prior, s = 1 treats every
class as equally likely a priori. The probabilities stay normalised; they are calibrated (temperature) at s = 0,
so ECE is reported per setting (docs/training.md).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def prior_log_offset(class_prior: Sequence[float] | None, prior_correction: float, n_classes: int) -> np.ndarray:
    """What to subtract from tempered logits: s * log(prior); zeros when there is no prior or s = 0."""
    if class_prior is None or prior_correction == 0.0:
        return np.zeros(n_classes, np.float32)
    prior = np.asarray(class_prior, np.float64)
    prior = prior / prior.sum()
    return (prior_correction * np.log(prior)).astype(np.float32)


def adjust_log_probs(log_probs: np.ndarray, class_prior: Sequence[float], prior_correction: float) -> np.ndarray:
    """Probabilities (N, K) at `prior_correction` from log-probabilities at the trained prior (s = 0)."""
    shifted = np.asarray(log_probs, np.float64) - prior_log_offset(class_prior, prior_correction, log_probs.shape[1])
    shifted -= shifted.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(axis=1, keepdims=True)


def class_frequencies(labels: Sequence[int], n_classes: int) -> list[float]:
    """The training prior stored in a model's JSON: each class's share of the training labels (never 0)."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=n_classes).astype(np.float64)
    counts = np.maximum(counts, 1.0)  # a class absent from training still gets a finite log-prior
    return [round(float(c), 6) for c in counts / counts.sum()]
