"""Our expression classes in REP-155's vocabulary: an `hri_msgs/Expression` constant and a place on the
valence/arousal circumplex for each class. ROS-free; ros/ros4hri.py writes the messages.

Constants: every class maps to the `Expression` constant that names it; contempt has none, and is counted with
disgust (its nearest basic expression, and FER+'s most common confusion for it), so `expression` is always one
of the message's constants. The published expression is the constant with the highest summed probability, and
its `confidence` is that summed, calibrated probability.

Valence and arousal: the probability-weighted mean of each class's point on Russell's circumplex (1980), with the
positions below (approximate readings of the circumplex, in [-1, 1]); a mean of points in the square stays in it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# class -> the hri_msgs/Expression constant's value (the string the message carries).
EXPRESSION_OF_CLASS: dict[str, str] = {
    "neutral": "neutral", "happy": "happy", "surprise": "surprised", "sadness": "sad", "anger": "angry",
    "disgust": "disgusted", "fear": "scared", "contempt": "disgusted",
}
# class -> (valence, arousal).
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "happy": (0.8, 0.5), "surprise": (0.2, 0.9), "sadness": (-0.7, -0.4),
    "anger": (-0.6, 0.7), "disgust": (-0.7, 0.3), "fear": (-0.6, 0.8), "contempt": (-0.5, 0.2),
}


def expression(class_names: Sequence[str], probabilities: np.ndarray) -> tuple[str, float]:
    """(Expression constant, its summed probability) for one face's class probabilities."""
    totals: dict[str, float] = {}
    for name, p in zip(class_names, np.asarray(probabilities, np.float64)):
        constant = EXPRESSION_OF_CLASS[name]
        totals[constant] = totals.get(constant, 0.0) + float(p)
    best = max(totals, key=totals.__getitem__)
    return best, min(1.0, totals[best])


def valence_arousal(class_names: Sequence[str], probabilities: np.ndarray) -> tuple[float, float]:
    """The probability-weighted circumplex point, each coordinate in [-1, 1]."""
    p = np.asarray(probabilities, np.float64)
    points = np.array([CIRCUMPLEX[name] for name in class_names])
    valence, arousal = p @ points / max(float(p.sum()), 1e-12)
    return float(np.clip(valence, -1.0, 1.0)), float(np.clip(arousal, -1.0, 1.0))
