"""PNG figures for the tools, training and the benchmarks: `new_figure`, `save_figure`, and the one
confusion-matrix plot (evaluate_bag's reports and training's).

Figures are matplotlib `Figure` objects drawn on an Agg canvas chosen when the figure is made, never through
pyplot: importing this module or saving a plot changes no process-wide state (no `matplotlib.use`, no
backend switch under a caller that has a GUI of its own), needs no display, and leaves no figure open.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8),
               **subplots: Any) -> tuple[Figure, Any]:
    """A figure on its own Agg canvas and its axes (`Figure.subplots(nrows, ncols, **subplots)`)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Lay the figure out tightly and write it as `path` (folders made as needed)."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                          title: str = "", truth_label: str = "true") -> Path:
    """Counts in each cell, colour by row share (recall per true class), truth down, prediction across."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(1, keepdims=True).clip(min=1)
    fig, ax = new_figure(figsize=(6.4, 5.6))
    image = ax.imshow(matrix / rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] / rows[i, 0] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel=truth_label, title=title)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    return save_figure(fig, path)
