"""Stable face ids across frames: greedy IoU matching with confirm/drop thresholds.

Faces move little between camera frames, so overlap is a reliable cue and needs no appearance model.
A track is reported once it has been matched `confirm_hits` times and dropped after `max_misses`
consecutive frames without a match (detections may blink for a frame or two).

Two rules keep an id from passing to another person: a box whose side differs from the track's by more than
`max_size_ratio` (a face much nearer or farther, which a face does not become between two frames) starts a new
track instead of continuing it, and `cut()` (called by the pipeline on a scene cut, cuts.py) ends every track,
so the faces of the new shot get new ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..types import Detection

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def size_ratio(a: Box, b: Box) -> float:
    """The larger box's side over the smaller's (sides as the square root of the area), >= 1."""
    area_a, area_b = max(a[2] * a[3], 1e-9), max(b[2] * b[3], 1e-9)
    return float(np.sqrt(max(area_a, area_b) / min(area_a, area_b)))


def match_boxes(a: Sequence[Box], b: Sequence[Box], threshold: float,
                max_size_ratio: float = float("inf")) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by IoU, best overlap first: (index in a, index in b) pairs >= threshold,
    leaving out pairs whose sizes differ by more than `max_size_ratio` (size_ratio)."""
    pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)
                    if size_ratio(x, y) <= max_size_ratio), reverse=True)
    used_a, used_b, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j))
    return out


@dataclass
class Track:
    face_id: int
    detection: Detection
    hits: int = 1  # frames with a matching detection
    age: int = 1  # frames since the track started (detected or carried)
    misses: int = 0  # consecutive detection rounds without a match
    updated: bool = True  # matched in the latest detection round


MAX_SIZE_RATIO = 1.4  # a face's box side changes less than this between two detections of it


class IouTracker:
    def __init__(self, iou_threshold: float = 0.3, confirm_hits: int = 1, max_misses: int = 5,
                 max_size_ratio: float = MAX_SIZE_RATIO):
        self.iou_threshold = iou_threshold
        self.max_size_ratio = max_size_ratio
        self.confirm_hits = confirm_hits
        self.max_misses = max_misses
        self.tracks: list[Track] = []
        self._next_id = 1
        self.dropped_ids: list[int] = []  # ids dropped by the latest update, for per-track state cleanup

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 1

    def update(self, detections: Sequence[Detection]) -> list[Track]:
        """Match a detection round to the tracks; returns the confirmed tracks, matched ones first."""
        self.dropped_ids = []
        matches = match_boxes([t.detection.box for t in self.tracks], [d.box for d in detections],
                              self.iou_threshold, self.max_size_ratio)
        used_t, used_d = {ti for ti, _ in matches}, {di for _, di in matches}
        for ti, di in matches:
            track = self.tracks[ti]
            track.detection = detections[di]
            track.hits += 1
            track.age += 1
            track.misses = 0
            track.updated = True
        kept = []
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.misses += 1
                track.age += 1
                track.updated = False
                if track.misses > self.max_misses:
                    self.dropped_ids.append(track.face_id)
                    continue
            kept.append(track)
        for di, det in enumerate(detections):
            if di not in used_d:
                kept.append(Track(self._next_id, det))
                self._next_id += 1
        self.tracks = kept
        return self.confirmed()

    def cut(self) -> list[int]:
        """A scene cut: every track ends (its id is never used again); returns the ended ids (also in
        `dropped_ids`) for per-track state cleanup."""
        self.dropped_ids = [t.face_id for t in self.tracks]
        self.tracks = []
        return self.dropped_ids

    def refresh(self, detections: dict[int, Detection]) -> list[Track]:
        """Re-measured boxes of known tracks (face id -> detection), e.g. from `FaceDetector.refine`: the
        association is known, so nothing is matched by overlap and no track is created or dropped."""
        for track in self.tracks:
            track.age += 1
            if track.face_id in detections:
                track.detection = detections[track.face_id]
                track.hits += 1
        return self.confirmed()

    def carry(self) -> list[Track]:
        """A frame without detection (detect_every_n > 1): every track keeps its latest box."""
        for track in self.tracks:
            track.age += 1
        return self.confirmed()

    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.hits >= self.confirm_hits and t.misses == 0]
