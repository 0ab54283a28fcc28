"""A small generated FER+-layout split (fer<row>.png + header-less label.csv), with votes chosen so that every
label-scheme rule (unique majority, tie, unknown, NF, soft distribution) is exercised."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# name, 10 votes (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
ROWS = [
    ("fer0000001.png", (10, 0, 0, 0, 0, 0, 0, 0, 0, 0)),  # neutral, unanimous
    ("fer0000002.png", (0, 7, 3, 0, 0, 0, 0, 0, 0, 0)),  # happy 0.7 / surprise 0.3
    ("fer0000003.png", (0, 0, 6, 0, 0, 0, 4, 0, 0, 0)),  # surprise 0.6 / fear 0.4
    ("fer0000004.png", (1, 0, 0, 8, 0, 0, 0, 0, 1, 0)),  # sadness; unknown votes do not count in soft
    ("fer0000005.png", (0, 0, 0, 0, 5, 5, 0, 0, 0, 0)),  # tie anger/disgust: majority drops, soft keeps
    ("fer0000006.png", (2, 0, 0, 0, 0, 0, 0, 0, 8, 0)),  # unknown: both drop
    ("fer0000007.png", (0, 0, 0, 0, 0, 0, 0, 0, 0, 10)),  # not a face: both drop
    ("fer0000008.png", (3, 0, 0, 0, 0, 0, 0, 6, 1, 0)),  # contempt
    ("fer0000009.png", (0, 0, 0, 0, 9, 1, 0, 0, 0, 0)),  # anger
    ("fer0000010.png", (0, 0, 0, 0, 1, 8, 0, 0, 1, 0)),  # disgust
    ("fer0000011.png", (0, 0, 1, 0, 0, 0, 9, 0, 0, 0)),  # fear
    ("fer0000012.png", (0, 10, 0, 0, 0, 0, 0, 0, 0, 0)),  # happy, unanimous
]


def face(index: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def write_split(root: Path, rows=ROWS, repeat: int = 1, image_size: int = 48) -> Path:
    """FER+ split folder under `root`; `repeat` copies every row that many times (new names) for training."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in range(repeat):
        for i, (name, votes) in enumerate(rows):
            name = name if r == 0 else name.replace("fer", f"fer{r:02d}")
            cv2.imwrite(str(root / name), face(r * 100 + i, image_size))
            lines.append(f'{name},"(0, 0, {image_size}, {image_size})",' + ",".join(map(str, votes)))
    (root / "label.csv").write_text("\n".join(lines) + "\n")
    return root
