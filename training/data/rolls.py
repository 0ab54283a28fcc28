"""Training faces the way the node now classifies them: each face rotated so its eyes are level (align_faces).

The node levels a face's crop by MTCNN's eye landmarks (core/alignment.level_crop). FER+ faces are 48 px crops,
mostly upright, but not all: measure each one's roll once with the node's own detector (`python -m
training.data.rolls`, a JSON of degrees by image), then `--level-rolls FILE` rotates every face found by its roll
when the data is loaded. Faces MTCNN does not find stay as they are (the node would not classify them at all).

    python -m training.data.rolls --data ../shared/data/ferplus/FER2013Train ../shared/data/ferplus/FER2013Valid \\
        --out runs/ferplus_rolls.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from emotion_recognition_ros.core.alignment import eye_roll_degrees, rotated_crop
from emotion_recognition_ros.core.classes import EMOTIONS
from emotion_recognition_ros.core.detection import create_detector
from emotion_recognition_ros.core.device import set_threads

from .dataset import DatasetError, FaceDataset
from .layouts import load_dataset

DETECT_SIZE = 144  # faces are upscaled to this before MTCNN (48 px is below its smallest reliable face)


def image_key(path: str) -> str:
    """An image's key in a rolls file: its last two path parts (e.g. FER2013Train/fer0000001.png), so the file
    does not depend on where the data lies."""
    return "/".join(Path(path).parts[-2:])


def face_frame(gray: np.ndarray, size: int = DETECT_SIZE) -> np.ndarray:
    """A gray face crop as a BGR frame the detector can search: upscaled to `size`, with a replicated border of
    half its size (no pasted edge to find instead of the face)."""
    patch = cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)
    pad = size // 2
    return cv2.cvtColor(cv2.copyMakeBorder(patch, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)


def measure_rolls(data: FaceDataset, progress: bool = True) -> dict[str, float]:
    """Degrees of roll of each face MTCNN (the node's default detector and settings) finds, by image_key."""
    detector = create_detector("mtcnn", "cpu")
    rolls: dict[str, float] = {}
    start = time.monotonic()
    for i, (image, path) in enumerate(zip(data.images, data.paths)):
        found = detector.detect(face_frame(image))
        if found and len(found[0].landmarks) >= 2:
            rolls[image_key(path)] = round(eye_roll_degrees(found[0].landmarks), 2)
        if progress and (i + 1) % 1000 == 0:
            left = (time.monotonic() - start) / (i + 1) * (len(data) - i - 1)
            print(f"  {i + 1}/{len(data)} faces, {len(rolls)} found, ETA {left:.0f} s", file=sys.stderr, flush=True)
    return rolls


def level_faces(data: FaceDataset, rolls: dict[str, float]) -> int:
    """Rotate each face of `data` (in place) about its centre by its measured roll; returns how many were."""
    levelled = 0
    for i, path in enumerate(data.paths):
        roll = rolls.get(image_key(path))
        if not roll:
            continue
        side = float(data.images[i].shape[0])  # FER+ faces are square crops: the whole image is the face box
        data.images[i] = rotated_crop(data.images[i], (0.0, 0.0, side, side), roll)
        levelled += 1
    return levelled


def read_rolls(paths: Iterable[str | Path]) -> dict[str, float]:
    """The rolls of one or more files written by this module (later files win)."""
    rolls: dict[str, float] = {}
    for path in paths:
        try:
            rolls.update(json.loads(Path(path).read_text())["rolls"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read rolls file {path}: {exc}") from exc
    return rolls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.rolls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="dataset folders (FER+ splits, CK+)")
    parser.add_argument("--out", required=True, help="the JSON to write")
    args = parser.parse_args(argv)
    set_threads(1)
    rolls: dict[str, float] = {}
    summary = {}
    for folder in args.data:
        try:
            data = load_dataset(folder, list(EMOTIONS), "soft")  # the scheme that keeps the most faces (ties too)
        except (DatasetError, OSError) as exc:
            print(f"training.data.rolls: {exc}", file=sys.stderr)
            return 2
        found = measure_rolls(data)
        values = np.abs(np.array(list(found.values()) or [0.0]))
        summary[Path(folder).name] = {
            "faces": len(data), "found": len(found), "median_abs_roll": round(float(np.median(values)), 2),
            "share_over_5_deg": round(float((values > 5).mean()), 4),
            "share_over_10_deg": round(float((values > 10).mean()), 4)}
        print(f"{folder}: {summary[Path(folder).name]}")
        rolls.update(found)
    try:
        Path(args.out).write_text(json.dumps({"detector": "mtcnn (node defaults)", "detect_size": DETECT_SIZE,
                                              "summary": summary, "rolls": rolls}, indent=1))
    except OSError as exc:
        print(f"training.data.rolls: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(rolls)} rolls to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
