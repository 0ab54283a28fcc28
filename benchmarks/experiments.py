"""`python -m benchmarks.experiments`: what makes the node faster, measured in-process on bench frames.

Each experiment changes one thing against the node's defaults and reports time and, where it can change
results, accuracy on the pasted faces: detector input scale, detect-every-N, synchronous vs. background
detection, threads, batching all faces of a frame vs. one at a time, channels-last memory format.
Writes bench_output/experiments.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import report
from .bench import DEFAULT_OUTPUT, machine_description
from .frames import build_frame_sets
from .matching import PredictedFace, Score
from .stats import summarize_ms


def pipeline_run(frame_sets, hold: int, **config) -> dict:
    """Sync per-frame pipeline time and accuracy with some PipelineConfig changes (each scene `hold` frames)."""
    from emotion_recognition_ros.pipeline import load_pipeline

    p = load_pipeline(**config)
    out = {}
    try:
        for fs in frame_sets:
            p.reset()
            score, times, detect = Score(), [], []
            for s in fs.scenes:
                for _ in range(hold):
                    t = time.perf_counter()
                    r = p.process(s.frame)
                    times.append(time.perf_counter() - t)
                    detect.append(r.timings["detect"])
                    names = p.class_names
                    score.add(s.boxes, s.labels, [PredictedFace(f.roi, names[f.label_index], names[f.label_index])
                                                  for f in r.faces])
            out[fs.key] = {"frame_ms": summarize_ms(times), "detect_ms": summarize_ms(detect),
                           "fps": round(1.0 / float(np.mean(times)), 2), **{k: v for k, v in score.as_dict().items()
                                                                              if k in ("recall", "accuracy", "false_positives")}}
    finally:
        if hasattr(p, "close"):
            p.close()
    return out


def classify_run(crops: list[np.ndarray], repeats: int, channels_last: bool, batched: bool) -> dict:
    import torch

    from emotion_recognition_ros.classifier import Classifier

    c = Classifier(None, "cpu")
    if channels_last:
        c.model = c.model.to(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        if batched:
            batch = c.to_batch(crops)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            c.predict(batch)
        else:
            for crop in crops:
                batch = c.to_batch([crop])
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                c.predict(batch)
        times.append(time.perf_counter() - t)
    return summarize_ms(times)


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=12, help="distinct scenes per set (default 12)")
    p.add_argument("--hold", type=int, default=5, help="frames per scene (default 5)")
    p.add_argument("--faces", default="1,4")
    p.add_argument("--size", default="640x480")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    import datetime as dt

    started = dt.datetime.now(dt.timezone.utc)
    sets = build_frame_sets([args.size], [int(v) for v in args.faces.split(",")], args.frames)
    results: dict = {"meta": {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
                              "command": " ".join(["python -m benchmarks.experiments"] + (argv or sys.argv[1:])),
                              "load_average_at_start": list(__import__("os").getloadavg())},
                     "pipeline": {}, "classify": {}}
    variants = {
        "default (sync, scale 1, every frame, 1 thread)": dict(),
        "detect_scale 0.5": dict(detect_scale=0.5),
        "detect_scale 0.5, min_face_size 60": dict(detect_scale=0.5, min_face_size=60),
        "detect_every_n 3": dict(detect_every_n=3),
        "detect_async": dict(detect_async=True),
    }
    for name, cfg in variants.items():
        print(f"experiments: pipeline {name}", flush=True)
        results["pipeline"][name] = pipeline_run(sets, args.hold, device="cpu", **cfg)
    print("experiments: pipeline 2 threads", flush=True)
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    results["pipeline"]["2 threads (torch + OpenCV)"] = pipeline_run(sets, args.hold, device="cpu")
    for batched in (True, False):
        for cl in (False, True):
            crops = [s.frame[y:y + h, x:x + w] for s in sets[-1].scenes for (x, y, w, h) in s.boxes][:4]
            for threads in (1, 2):
                torch.set_num_threads(threads)
                name = f"{len(crops)} faces, {'one batch' if batched else 'one at a time'}, " \
                       f"{'channels_last' if cl else 'contiguous'}, {threads} thread(s)"
                print(f"experiments: classify {name}", flush=True)
                results["classify"][name] = classify_run(crops, 30, cl, batched)
    torch.set_num_threads(1)
    results["meta"]["load_average_at_end"] = list(__import__("os").getloadavg())
    report.write_json(args.output / "experiments.json", results)
    print(f"\n{'pipeline variant':<48}{'frames':<14}{'frame p50':>10}{'detect p50':>11}{'fps':>7}{'recall':>8}{'acc':>7}{'FP':>5}")
    for name, per in results["pipeline"].items():
        for key, r in per.items():
            print(f"{name:<48}{key:<14}{r['frame_ms']['p50']:>10}{r['detect_ms']['p50']:>11}{r['fps']:>7}"
                  f"{r['recall']:>8}{r['accuracy']:>7}{r['false_positives']:>5}")
    print(f"\n{'classifier variant':<62}{'p50 ms':>8}{'p95 ms':>8}")
    for name, r in results["classify"].items():
        print(f"{name:<62}{r['p50']:>8}{r['p95']:>8}")
    print(f"experiments: wrote {args.output / 'experiments.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
