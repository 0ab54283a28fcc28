"""Debug drawings: boxes, labels and confidence bars; Grad-CAM overlays on the frame."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .alignment import rotated_crop
from .types import FaceResult

COLOURS = [(60, 60, 230), (60, 170, 60), (170, 60, 170), (40, 200, 240), (230, 130, 40), (200, 200, 60)]


def _colour(index: int) -> tuple[int, int, int]:
    return COLOURS[index % len(COLOURS)]


def draw_annotations(frame: np.ndarray, faces: Sequence, class_names: Sequence[str]) -> np.ndarray:
    """A copy of the frame with each face's box, id, label and a bar per class (smoothed scores)."""
    out = frame.copy()
    for face in faces:
        x, y, w, h = (int(v) for v in face.roi)
        k = int(np.argmax(face.scores))
        cv2.rectangle(out, (x, y), (x + w, y + h), _colour(k), 2)
        text = f"#{face.face_id} {class_names[k]} {face.scores[k]:.2f}"
        cv2.putText(out, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _colour(k), 1, cv2.LINE_AA)
        bar_x = x + w + 4 if x + w + 90 < out.shape[1] else max(0, x - 90)
        for i, (name, p) in enumerate(zip(class_names, face.scores)):
            by = y + i * 12
            cv2.rectangle(out, (bar_x, by), (bar_x + int(40 * float(p)), by + 9), _colour(i), -1)
            cv2.putText(out, name[:8], (bar_x + 42, by + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    return out


def overlay_heatmaps(frame: np.ndarray, faces: Sequence[FaceResult], heatmaps: np.ndarray,
                     classes: Sequence[int] = (), class_names: Sequence[str] = (), alpha: float = 0.6) -> np.ndarray:
    """A copy of the frame with each face's heatmap (JET colours) blended over its crop box.

    Colour: the map divided by its own maximum (red = where the evidence for the explained class is strongest in
    this face, blue = none). Opacity: `alpha` times this frame's probability of the explained class (`classes[i]`,
    raw_scores), so a face explained at p = 0.3 shows a faint map and one at p = 1.0 a full one. With class names
    the explained class and its probability are written under the box."""
    out = frame.copy()
    fh, fw = out.shape[:2]
    for i, (face, heatmap) in enumerate(zip(faces, heatmaps)):
        x, y, w, h = (int(round(v)) for v in face.crop_box)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        k = int(classes[i]) if i < len(classes) else int(np.argmax(face.raw_scores))
        p = float(face.raw_scores[k])
        heat = cv2.applyColorMap(np.uint8(255 * np.clip(heatmap, 0, 1)), cv2.COLORMAP_JET)
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
        if face.crop_roll:  # the map is of the level crop: turn it back to the frame's roll
            heat = rotated_crop(heat, (0.0, 0.0, float(w), float(h)), -face.crop_roll)
        heat = heat[y0 - y:y1 - y, x0 - x:x1 - x]
        a = alpha * min(max(p, 0.0), 1.0)
        out[y0:y1, x0:x1] = cv2.addWeighted(out[y0:y1, x0:x1], 1 - a, heat, a, 0)
        if k < len(class_names):
            cv2.putText(out, f"map: {class_names[k]} {p:.2f}", (x0, min(fh - 4, y1 + 14)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
