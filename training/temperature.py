"""Confidence calibration: temperature scaling (Guo et al., 2017), expected calibration error, reliability plot.

The temperature T is fitted on validation data (FER+ Valid, never Test) by minimising the negative
log-likelihood of softmax(logits / T); it is stored in the model's metadata (`temperature`) and applied
wherever probabilities are computed (the node's Classifier, training.inference.predict_proba).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_recognition_ros.plots import new_figure, save_figure

ECE_BINS = 15


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The T in [low, high] minimising validation NLL (log-spaced grid, then golden-section refinement).

    `logits` may also be log-probabilities (log softmax differs from the logits by a per-row constant, which
    the softmax ignores), so TTA-averaged probabilities can be calibrated the same way.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("temperature scaling needs at least one labelled example")
    grid = np.exp(np.linspace(np.log(low), np.log(high), 200))
    losses = [_nll(logits, labels, t) for t in grid]
    best = int(np.argmin(losses))
    a, b = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if _nll(logits, labels, np.exp(c)) < _nll(logits, labels, np.exp(d)):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """ECE (top-label, equal-width confidence bins) and the per-bin counts, confidence and accuracy."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else 0.0
        acc = float(correct[mask].mean()) if n else 0.0
        ece += n / max(len(labels), 1) * abs(acc - conf)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": n, "confidence": conf,
                     "accuracy": acc})
    return {"ece": float(ece), "bins": bins, "mean_confidence": float(confidence.mean()) if len(labels) else 0.0,
            "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
            if len(labels) else 0.0, "per_bin": rows}


def plot_reliability(calibration: dict, path: str | Path, title: str = "") -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with the bin counts below."""
    rows = calibration["per_bin"]
    centres = [(r["low"] + r["high"]) / 2 for r in rows]
    width = rows[0]["high"] - rows[0]["low"]
    fig, (top, bottom) = new_figure(2, 1, figsize=(5.2, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres, [r["accuracy"] if r["n"] else 0 for r in rows], width=width * 0.95, color="tab:blue",
            edgecolor="black", label="accuracy")
    filled = [r for r in rows if r["n"]]
    top.bar([(r["low"] + r["high"]) / 2 for r in filled], [abs(r["confidence"] - r["accuracy"]) for r in filled],
            width=width * 0.95, bottom=[min(r["confidence"], r["accuracy"]) for r in filled], fill=False,
            edgecolor="tab:red", hatch="//", label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title=title or f"ECE {calibration['ece']:.3f} ({calibration['bins']} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [r["n"] for r in rows], width=width * 0.95, color="gray")
    bottom.set(xlabel="confidence (top class probability)", ylabel="faces")
    return save_figure(fig, path)
