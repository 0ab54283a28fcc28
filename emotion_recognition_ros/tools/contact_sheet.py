"""One PNG a person can look at: sampled annotated frames beside their Grad-CAM heatmaps, with captions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

# Captions carry the per-face labels: sized to be read on the sheet itself (the node's own labels in the
# annotated frames shrink with the tiles).
CAPTION_HEIGHT = 30
TITLE_HEIGHT = 36
BACKGROUND = (32, 32, 32)


@dataclass
class SheetEntry:
    annotated: np.ndarray  # BGR
    heatmap: np.ndarray | None  # BGR, or None when the node published none for this frame
    caption: str


def _tile(image: np.ndarray | None, width: int, height: int) -> np.ndarray:
    tile = np.full((height, width, 3), BACKGROUND, np.uint8)
    if image is None:
        cv2.putText(tile, "no heatmap", (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (160, 160, 160), 1,
                    cv2.LINE_AA)
        return tile
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = (height - h) // 2, (width - w) // 2
    tile[y:y + h, x:x + w] = resized
    return tile


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)


def compose(entries: Sequence[SheetEntry], columns: int = 2, tile_width: int = 320, title: str = "") -> np.ndarray:
    """A grid of [annotated | heatmap] pairs, `columns` pairs per row, each pair captioned below."""
    if not entries:
        raise ValueError("no frames for the contact sheet")
    first = entries[0].annotated
    tile_height = max(1, round(tile_width * first.shape[0] / first.shape[1]))
    columns = max(1, min(columns, len(entries)))
    rows = -(-len(entries) // columns)
    cell_w, cell_h = 2 * tile_width, tile_height + CAPTION_HEIGHT
    top = TITLE_HEIGHT if title else 0
    sheet = np.full((top + rows * cell_h, columns * cell_w, 3), BACKGROUND, np.uint8)
    if title:
        _text(sheet, title, (8, 25), 0.65)
    for i, entry in enumerate(entries):
        r, c = divmod(i, columns)
        y, x = top + r * cell_h, c * cell_w
        sheet[y:y + tile_height, x:x + tile_width] = _tile(entry.annotated, tile_width, tile_height)
        sheet[y:y + tile_height, x + tile_width:x + cell_w] = _tile(entry.heatmap, tile_width, tile_height)
        _text(sheet, entry.caption[: cell_w // 11], (x + 6, y + tile_height + 22), 0.62)
    return sheet


def save_png(image: np.ndarray, path: str | Path, colours: int = 256) -> Path:
    """Save as a palette PNG: a few hundred KB instead of MBs for photos, with no visible loss at 256 colours."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    rgb.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    return path


def pick_evenly(n_available: int, n_wanted: int) -> list[int]:
    """Indices of `n_wanted` items spread evenly over `n_available` (all of them if fewer)."""
    if n_available <= n_wanted:
        return list(range(n_available))
    return [round(i * (n_available - 1) / (n_wanted - 1)) for i in range(n_wanted)] if n_wanted > 1 else [0]


def make_contact_sheet(entries: Sequence[SheetEntry], path: str | Path, *, count: int = 8, columns: int = 2,
                       tile_width: int = 320, title: str = "") -> Path:
    chosen = [entries[i] for i in pick_evenly(len(entries), count)]
    return save_png(compose(chosen, columns, tile_width, title), path)
