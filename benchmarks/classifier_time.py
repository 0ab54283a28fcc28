"""Per-face classifier time through the node's path (`Classifier.classify`: preprocess + inference + temperature
+ operating point), several models side by side, interleaved so load changes hit them alike.

    python -m benchmarks.classifier_time --models default runs/new/model --repeats 300
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from skimage.data import astronaut

from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.device import set_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classifier_time", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["default"], help="shipped names or paths")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--backend", default="auto", help="auto | torch | onnxruntime")
    parser.add_argument("--prior-correction", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    face = np.ascontiguousarray(astronaut()[20:140, 160:280, ::-1])  # a 120 px face, as the node crops it
    classifiers = []
    for name in args.models:
        classifier = Classifier(name, "cpu", backend=args.backend, threads=args.threads)
        classifier.prior_correction = args.prior_correction
        classifiers.append(classifier)
    times: list[list[float]] = [[] for _ in classifiers]
    for _ in range(args.repeats):
        for k, classifier in enumerate(classifiers):
            start = time.perf_counter()
            classifier.classify([face])
            times[k].append(time.perf_counter() - start)
    for name, classifier, samples in zip(args.models, classifiers, times):
        ms = np.array(samples) * 1e3
        print(f"{name}: {classifier.model_id} {classifier.meta.input_size}px backend {classifier.backend}: "
              f"median {np.median(ms):.2f} ms/face, p90 {np.percentile(ms, 90):.2f} ms (n = {len(ms)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
