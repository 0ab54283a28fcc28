"""Measure how a detector's boxes relate to the classifier's training crops, and what that costs in accuracy.

CK+48 faces are pasted (as tight squares) onto camera-like frames with `scenes.make_scene`; the detector's
box for each is compared with the pasted square (centre shift as a fraction of the box, side ratio), and
the classifier is scored three ways: on the original 48 px crops, through the pipeline's crop without any
box adjustment, and with a given adjustment.

    python -m emotion_recognition_ros.tools.calibration --frames 200 --plot calibration.png
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.classifier import Classifier
from ..core.detection import BoxAdjust, create_detector
from ..core.device import set_threads
from ..core.preprocess import crop_face, square_box
from ..media.scenes import DEFAULT_CKPLUS, load_faces, make_scene
from ..core.tracking.tracker import iou
from ..plots import new_figure, save_figure


def measure(frames: int, faces_per_frame: int, face_size: tuple[int, int], detector_name: str,
            classifier: Classifier, seed: int, detect_scale: float = 1.0, min_face_size: int = 40) -> dict:
    faces = load_faces(DEFAULT_CKPLUS, classifier.class_names)
    rng = np.random.default_rng(seed)
    detector = create_detector(detector_name, min_face_size=min_face_size, scale=detect_scale)
    rows = []  # (dx, dy, scale_w, scale_h, frame index, det box, pasted box, label index, face)
    scenes = []
    n_pasted = 0
    det_times = []
    for index in tqdm(range(frames), desc=f"{detector_name} on pasted CK+ faces", unit="frame"):
        chosen = [faces[i] for i in rng.choice(len(faces), faces_per_frame, replace=False)]
        scene = make_scene(chosen, face_size=face_size, rng=int(rng.integers(1 << 31)))
        t = time.perf_counter()
        detections = detector.detect(scene.frame)
        det_times.append(time.perf_counter() - t)
        scenes.append(scene)
        n_pasted += len(scene.boxes)
        for box, face in zip(scene.boxes, scene.faces):
            best = max(detections, key=lambda d: iou(d.box, box), default=None)
            if best is None or iou(best.box, box) < 0.3:
                continue
            x, y, w, h = best.box
            px, py, ps, _ = box
            rows.append(dict(dx=(px + ps / 2 - x - w / 2) / w, dy=(py + ps / 2 - y - h / 2) / h,
                             scale=ps / max(w, h), det=best.box, frame=index, pasted=box,
                             label=classifier.class_names.index(face.label), face=face))
    found = len(rows)
    adjust = BoxAdjust(scale=float(np.median([r["scale"] for r in rows])), dx=float(np.median([r["dx"] for r in rows])),
                       dy=float(np.median([r["dy"] for r in rows])))
    labels = np.array([r["label"] for r in rows])

    def accuracy(crops) -> float:
        probs = np.concatenate([classifier.classify(crops[i:i + 64]) for i in range(0, len(crops), 64)])
        return float((probs.argmax(1) == labels).mean())

    original = [r["face"].image for r in rows]
    raw = [crop_face(scenes[r["frame"]].frame, square_box(*r["det"]), 0.0, square=False) for r in rows]
    adjusted = [crop_face(scenes[r["frame"]].frame, adjust.apply(r["det"]), 0.0, square=False) for r in rows]
    pasted = [crop_face(scenes[r["frame"]].frame, r["pasted"], 0.0, square=False) for r in rows]
    crop_iou = [iou(adjust.apply(r["det"]), r["pasted"]) for r in rows]
    return {
        "detector": detector_name, "detect_scale": detect_scale, "min_face_size": min_face_size, "frames": frames, "faces_pasted": n_pasted,
        "faces_found": found, "recall": found / max(1, n_pasted),
        "detect_ms_median": float(np.median(det_times) * 1000),
        "adjust": {"scale": adjust.scale, "dx": adjust.dx, "dy": adjust.dy},
        "spread": {k: [float(np.percentile([r[k] for r in rows], q)) for q in (10, 50, 90)]
                   for k in ("scale", "dx", "dy")},
        "crop_iou_median": float(np.median(crop_iou)),
        "accuracy": {"original_crops": accuracy(original), "pasted_square": accuracy(pasted),
                     "detector_square_unadjusted": accuracy(raw), "detector_adjusted": accuracy(adjusted)},
        "n": len(rows), "_rows": rows,
    }


def plot(report: dict, path: Path) -> None:
    rows = report["_rows"]
    fig, axes = new_figure(1, 3, figsize=(12, 3.5))
    for ax, key, title in zip(axes, ("scale", "dx", "dy"), ("pasted side / max(box w, h)", "centre shift x / box w",
                                                              "centre shift y / box h")):
        ax.hist([r[key] for r in rows], bins=30, color="tab:blue")
        ax.axvline(report["adjust"][key], color="tab:red", label=f"median {report['adjust'][key]:.3f}")
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"{report['detector']} boxes vs pasted CK+ squares ({report['n']} faces)")
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--model", default="", help="classifier (empty = shipped default)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--faces-per-frame", type=int, default=3)
    parser.add_argument("--face-size", type=int, nargs=2, default=(60, 180))
    parser.add_argument("--detect-scale", type=float, default=1.0)
    parser.add_argument("--min-face-size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the box offset histograms")
    args = parser.parse_args(argv)

    set_threads(args.threads)
    classifier = Classifier(args.model or None, "cpu")
    report = measure(args.frames, args.faces_per_frame, tuple(args.face_size), args.detector, classifier,
                     args.seed, args.detect_scale, args.min_face_size)
    if args.plot:
        plot(report, args.plot)
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
