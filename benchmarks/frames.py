"""Benchmark frames: labelled CK+ faces pasted on textured backgrounds (`scenes.make_scene`), per frame size
and face count. Deterministic: the same arguments give the same frames, so ours and the peer see the same
pixels and two runs of the bench compare.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emotion_recognition_ros.media.scenes import DEFAULT_CKPLUS, LabelledFace, Scene, load_faces, make_scene

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
FACE_COUNTS = (0, 1, 4)
FACE_SIZE = (100, 180)  # pixels per pasted face (scenes.make_scene default)


@dataclass
class FrameSet:
    size: str  # "WxH"
    faces: int  # faces per frame
    scenes: list[Scene]

    @property
    def key(self) -> str:
        return f"{self.size}/{self.faces}f"

    @property
    def width(self) -> int:
        return self.scenes[0].frame.shape[1]

    @property
    def height(self) -> int:
        return self.scenes[0].frame.shape[0]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); ValueError naming the bad text otherwise."""
    if text in SIZES:
        return SIZES[text]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad frame size '{text}' (expected WIDTHxHEIGHT, e.g. 640x480)") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ValueError(f"frame size '{text}' out of range (64..8192 per side)")
    return w, h


def _scene(faces: list[LabelledFace], width: int, height: int, seed: int) -> Scene:
    """make_scene with FACE_SIZE; random placement can fail for many faces in a small frame: retry with
    other seeds, then with smaller faces."""
    lo, hi = FACE_SIZE
    for attempt in range(40):
        try:
            return make_scene(faces, width, height, (lo, hi), rng=seed + attempt * 1_000_003)
        except ValueError:
            if attempt % 10 == 9:
                lo, hi = max(48, int(lo * 0.8)), max(48, int(hi * 0.8))
    raise ValueError(f"cannot place {len(faces)} faces in {width}x{height}")


def build_frame_sets(sizes: Sequence[str], face_counts: Sequence[int], frames_per_set: int,
                     root: Path | str = DEFAULT_CKPLUS, seed: int = 0,
                     faces: list[LabelledFace] | None = None) -> list[FrameSet]:
    """One FrameSet per (size, face count), each of `frames_per_set` distinct scenes.

    Faces are drawn without replacement from the whole CK+ pool (shuffled once by `seed`), cycling when a
    run needs more faces than the pool holds, so accuracy is measured over many subjects and all classes.
    """
    pool = faces if faces is not None else load_faces(root)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    cursor = 0
    sets = []
    for size in sizes:
        width, height = parse_size(size)
        for count in face_counts:
            scenes = []
            for i in range(frames_per_set):
                chosen = [pool[order[(cursor + k) % len(pool)]] for k in range(count)]
                cursor += count
                scenes.append(_scene(chosen, width, height, seed * 100_003 + i * 7919 + count))
            sets.append(FrameSet(f"{width}x{height}", count, scenes))
    return sets


def held_stream(frame_set: FrameSet, hold: int, motion: float = 0.0, noise: float = 0.0,
                seed: int = 0) -> tuple[list[np.ndarray], list[tuple[list, list]]]:
    """The frames a camera would see: each scene `hold` frames in a row, panning `motion` pixels a frame in a
    random direction (per scene) with Gaussian sensor noise of std `noise` grey levels, so that consecutive
    frames are never identical and a tracker has to follow the faces. Returns the frames and, per frame, the
    (boxes, labels) truth: boxes shifted with the frame and clipped to it."""
    rng = np.random.default_rng(seed + 17)
    frames, truth = [], []
    for scene in frame_set.scenes:
        height, width = scene.frame.shape[:2]
        angle = rng.uniform(0.0, 2.0 * np.pi)
        vx, vy = motion * np.cos(angle), motion * np.sin(angle)
        for step in range(hold):
            dx, dy = round(vx * step), round(vy * step)
            frame = scene.frame
            if dx or dy:
                shift = np.float32([[1, 0, dx], [0, 1, dy]])
                frame = cv2.warpAffine(frame, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
            if noise > 0:
                grain = rng.normal(0.0, noise, frame.shape)
                frame = np.clip(frame + grain, 0, 255).astype(np.uint8)
            frames.append(frame)
            truth.append(([_clip((x + dx, y + dy, w, h), width, height) for x, y, w, h in scene.boxes],
                          list(scene.labels)))
    return frames, truth


def _clip(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)
