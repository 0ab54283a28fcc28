"""`python -m benchmarks.experiments`: what makes the node faster, measured in-process on bench frames.

Each experiment changes one thing against the node's defaults and reports time and, where it can change
results, accuracy on the pasted faces: full detection every frame vs. every Nth with tracked faces re-measured
in between (or carried), detector input scale, background detection, threads, the classifier's backend
(ONNX Runtime vs. eager torch), batching all faces of a frame vs. one at a time.
Writes bench_output/experiments.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np

from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.pipeline import load_pipeline

from . import report
from .bench import DEFAULT_OUTPUT, machine_description
from .frames import build_frame_sets, held_stream
from .matching import PredictedFace, Score
from .stats import summarize_ms


def pipeline_run(frame_sets, hold: int, motion: float, noise: float, **config) -> dict:
    """Sync per-frame pipeline time and accuracy with some PipelineConfig changes, on the bench's camera-like
    stream (each scene `hold` frames, panning `motion` px a frame with sensor noise: frames.held_stream)."""
    p = load_pipeline(**config)
    out = {}
    try:
        for fs in frame_sets:
            p.reset()
            score, times, detect = Score(), [], []
            frames, truth = held_stream(fs, hold, motion, noise)
            for frame, (boxes, labels) in zip(frames, truth):
                t = time.perf_counter()
                r = p.process(frame)
                times.append(time.perf_counter() - t)
                detect.append(r.timings["detect"])
                names = p.class_names
                score.add(boxes, labels, [PredictedFace(f.roi, names[f.label_index], names[f.label_index])
                                          for f in r.faces])
            out[fs.key] = {"frame_ms": summarize_ms(times), "detect_ms": summarize_ms(detect),
                           "fps": round(1.0 / float(np.mean(times)), 2), **{k: v for k, v in score.as_dict().items()
                                                                              if k in ("recall", "accuracy", "false_positives")}}
    finally:
        if hasattr(p, "close"):
            p.close()
    return out


def classify_run(crops: list[np.ndarray], repeats: int, backend: str, batched: bool, threads: int = 1) -> dict:
    c = Classifier(None, "cpu", backend=backend, threads=threads)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        if batched:
            c.classify(crops)
        else:
            for crop in crops:
                c.classify([crop])
        times.append(time.perf_counter() - t)
    return summarize_ms(times)


VARIANTS = {
    "defaults (full detection every 5th, refine between)": dict(),
    "full detection every frame": dict(detect_every_n=1),
    "every 5th, carry boxes (no refine)": dict(track_refine=False),
    "every 3rd, refine between": dict(detect_every_n=3),
    "every 10th, refine between": dict(detect_every_n=10),
    "every frame, detect_scale 0.5": dict(detect_every_n=1, detect_scale=0.5),
    "detect_async (background detection)": dict(detect_async=True),
    "classifier in torch (eager, channels_last)": dict(backend="torch"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=12, help="distinct scenes per set (default 12)")
    p.add_argument("--hold", type=int, default=5, help="frames per scene (default 5)")
    p.add_argument("--motion", type=float, default=4.0, help="camera pan while a scene is held, px/frame (default 4)")
    p.add_argument("--noise", type=float, default=2.0, help="sensor noise std, grey levels (default 2)")
    p.add_argument("--faces", default="1,4")
    p.add_argument("--size", default="640x480")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return p.parse_args(argv)


def pipeline_variants(args, sets) -> dict:
    out = {}
    for name, cfg in VARIANTS.items():
        print(f"experiments: pipeline {name}", flush=True)
        out[name] = pipeline_run(sets, args.hold, args.motion, args.noise, device="cpu", **cfg)
    print("experiments: pipeline 2 threads", flush=True)
    set_threads(2)
    out["defaults, 2 threads (torch + OpenCV + ONNX Runtime)"] = pipeline_run(sets, args.hold, args.motion,
                                                                              args.noise, device="cpu", threads=2)
    set_threads(1)
    return out


def classify_variants(sets) -> dict:
    out = {}
    crops = [s.frame[y:y + h, x:x + w] for s in sets[-1].scenes for (x, y, w, h) in s.boxes][:4]
    for backend in ("onnxruntime", "torch"):
        for batched in (True, False):
            for threads in (1, 2):
                set_threads(threads)
                name = f"{len(crops)} faces, {backend}, {'one batch' if batched else 'one at a time'}, {threads} thread(s)"
                print(f"experiments: classify {name}", flush=True)
                out[name] = classify_run(crops, 30, backend, batched, threads)
    set_threads(1)
    return out


def print_tables(results: dict) -> None:
    print(f"\n{'pipeline variant':<48}{'frames':<14}{'frame p50':>10}{'detect p50':>11}{'fps':>7}{'recall':>8}{'acc':>7}{'FP':>5}")
    for name, per in results["pipeline"].items():
        for key, r in per.items():
            print(f"{name:<48}{key:<14}{r['frame_ms']['p50']:>10}{r['detect_ms']['p50']:>11}{r['fps']:>7}"
                  f"{r['recall']:>8}{r['accuracy']:>7}{r['false_positives']:>5}")
    print(f"\n{'classifier variant':<62}{'p50 ms':>8}{'p95 ms':>8}")
    for name, r in results["classify"].items():
        print(f"{name:<62}{r['p50']:>8}{r['p95']:>8}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(1)
    started = dt.datetime.now(dt.timezone.utc)
    sets = build_frame_sets([args.size], [int(v) for v in args.faces.split(",")], args.frames)
    results: dict = {"meta": {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
                              "command": " ".join(["python -m benchmarks.experiments"] + (argv or sys.argv[1:])),
                              "load_average_at_start": list(os.getloadavg())}}
    results["pipeline"] = pipeline_variants(args, sets)
    results["classify"] = classify_variants(sets)
    results["meta"]["load_average_at_end"] = list(os.getloadavg())
    report.write_json(args.output / "experiments.json", results)
    print_tables(results)
    print(f"experiments: wrote {args.output / 'experiments.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
