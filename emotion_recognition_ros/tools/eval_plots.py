"""PNG plots for evaluate_bag: per-face label timelines and the confusion matrix (emotion_recognition_ros/plots.py figures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.lines import Line2D

from ..plots import new_figure, plot_confusion_matrix, save_figure
from .recording import Recording

# One fixed colour per expression, so timelines of different runs compare at a glance.
LABEL_COLOURS = {"anger": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c",
                 "sadness": "#1f77b4", "surprise": "#ff7f0e", "contempt": "#7f7f7f", "neutral": "#bcbd22"}


def _colour(label: str, extra: dict[str, str]) -> str:
    if label in LABEL_COLOURS:
        return LABEL_COLOURS[label]
    palette = matplotlib.colormaps["tab20"].colors
    return extra.setdefault(label, matplotlib.colors.to_hex(palette[len(extra) % len(palette)]))


def plot_timeline(rec: Recording, path: Path, max_tracks: int = 30) -> Path:
    """One row per tracked face (longest tracks first), one tick per result coloured by its label."""
    start = min(rec.frames)
    points: dict[int, list[tuple[float, str]]] = {}
    for result in rec.results:
        for face in result.faces:
            points.setdefault(face.face_id, []).append(((result.stamp_ns - start) / 1e9, face.label))
    ids = sorted(points, key=lambda k: -len(points[k]))[:max_tracks]
    ids.sort()
    fig, ax = new_figure(figsize=(10, 1.2 + 0.35 * max(1, len(ids))))
    extra: dict[str, str] = {}
    seen: dict[str, Any] = {}
    for row, face_id in enumerate(ids):
        times, labels = zip(*points[face_id])
        colours = [_colour(label, extra) for label in labels]
        ax.scatter(times, [row] * len(times), c=colours, marker="|", s=180, linewidths=2)
        for label in labels:
            seen.setdefault(label, _colour(label, extra))
    ax.set_yticks(range(len(ids)), [f"face {i}" for i in ids])
    ax.set_ylim(-0.7, len(ids) - 0.3)
    ax.set_xlabel("time since first frame (s)")
    ax.set_title(f"Expression per tracked face ({len(points)} tracks"
                 f"{', longest ' + str(len(ids)) + ' shown' if len(points) > len(ids) else ''})")
    handles = [Line2D([], [], color=c, marker="s", linestyle="", label=label) for label, c in sorted(seen.items())]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path, dpi=100)


def plot_confusion(accuracy: dict[str, Any], path: Path) -> Path:
    """evaluate_bag's confusion matrix (its `accuracy` section) as a PNG."""
    value = accuracy.get("accuracy")
    title = (f"accuracy {100 * value:.1f}% of {accuracy['scored_faces']} faces" if value is not None
             else "no scored faces")
    return plot_confusion_matrix(accuracy["confusion"], accuracy["labels"], path, title, truth_label="ground truth")
