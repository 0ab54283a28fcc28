"""`python -m benchmarks.gpu_bench`: in-process latency of the frame path on the device `--device` resolves to
(auto: CUDA when present), every frame a new scene (full detection each frame: the slow frame that matters).

Variants, each with heatmaps off and on (Grad-CAM inline, as benchmarks/stages.py times it):
  today        EmotionPipeline as it is: cv2 MTCNN on the CPU, crops on the CPU, classifier on the device;
  torch_mtcnn  the same pipeline with core.detection.mtcnn_torch on the device;
  device_frame the frame uploaded once; torch MTCNN, core.gpu_frame preprocessing and the classifier all on the
               device, one batch for all faces (no tracking/smoothing: host bookkeeping, small next to the stages timed).
Also the detector alone (cv2 vs torch on this device) and the detector agreement on these frames.
Prints p50/p95 ms and fps per (variant, size, faces, heatmaps) and writes JSON (`--output`).
CUDA timings synchronise before each clock read, so they are wall time of finished work.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from emotion_recognition_ros.core.detection import create_detector
from emotion_recognition_ros.core.detection.mtcnn import MtcnnDetector
from emotion_recognition_ros.core.detection.mtcnn_torch import TorchMtcnnDetector
from emotion_recognition_ros.core.device import resolve_device, set_threads
from emotion_recognition_ros.core.gpu_frame import FramePreprocessor
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.core.types import FaceResult, PipelineResult

from .agreement import Agreement
from .bench import gpu_description, machine_description
from .frames import build_frame_sets
from .stats import summarize_ms

VARIANTS = ("today", "torch_mtcnn", "device_frame")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--sizes", default="640x480,1280x720", help="comma-separated WxH frame sizes")
    p.add_argument("--faces", default="1,4", help="comma-separated faces per frame")
    p.add_argument("--frames", type=int, default=24, help="distinct scenes per (size, faces) (default 24)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the scenes (default 3)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and OpenCV intra-op threads (default 1, as benchmarks/bench.py pins them)")
    p.add_argument("--quick", action="store_true", help="CPU dry run: 3 scenes, 1 pass")
    p.add_argument("--output", type=Path, default=Path("bench_output/gpu_bench.json"), help="JSON file to write")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = 3, 1
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.faces = [int(v) for v in args.faces.split(",")]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)} (use {', '.join(VARIANTS)})")
    if args.frames < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--frames, --repeats and --threads must be >= 1")
    return args


class Timer:
    """Wall-clock seconds of finished work: synchronises CUDA before each reading."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def make_pipelines(device: str, variants: list[str]) -> tuple[torch.device, dict]:
    """(the classifier's device, variant name -> object with process(frame, explain) and reset())."""
    today = EmotionPipeline(PipelineConfig(device=device))
    classifier = today.classifier  # one model for all variants
    c = today.config
    torch_detector = create_detector("mtcnn_torch", device=classifier.device, config=c)
    pipelines = {"today": today,
                 "torch_mtcnn": EmotionPipeline(PipelineConfig(device=device), classifier=classifier,
                                                detector=torch_detector)}
    pipelines["device_frame"] = DeviceFramePath(pipelines["torch_mtcnn"], FramePreprocessor(classifier.meta,
                                                                                           classifier.device))
    return classifier.device, {name: pipelines[name] for name in variants}


class DeviceFramePath:
    """The frame on the device from one upload to the probabilities (the path core/ makes possible)."""

    def __init__(self, pipeline, preprocessor):
        self.pipeline, self.preprocessor = pipeline, preprocessor

    def reset(self) -> None:
        self.pipeline.reset()

    def process(self, frame: np.ndarray, explain: bool = False):
        p = self.pipeline
        on_device = self.preprocessor.upload(frame)
        detections = p.detector.detect(on_device)[: p.config.max_faces]
        boxes = [p.crop_box(d) for d in detections]
        result = PipelineResult(batch=self.preprocessor(on_device, boxes))
        probabilities = p.classifier.predict(result.batch)
        result.faces = [FaceResult(face_id=i, detection=d, crop_box=b, roi=tuple(int(v) for v in b), crop=None,
                                   raw_scores=s, scores=s, track_age=1, fresh=True)
                        for i, (d, b, s) in enumerate(zip(detections, boxes, probabilities))]
        if explain:
            result.heatmaps = p.explain(result)
        return result


def time_variant(process: Callable, reset: Callable, frames: list[np.ndarray], repeats: int, explain: bool,
                 timer: Timer) -> dict:
    for frame in frames[:2]:  # warm-up: lazy initialisation, cuDNN autotuning, allocator growth
        process(frame, explain=explain)
    totals, found = [], 0
    for _ in range(repeats):
        for frame in frames:
            reset()  # a new scene each frame: no tracking shortcut
            t0 = timer.now()
            result = process(frame, explain=explain)
            totals.append(timer.now() - t0)
            found += len(result.faces)
    summary = summarize_ms(totals)
    summary["fps"] = round(1000.0 / summary["mean"], 1) if summary["mean"] else None
    summary["faces_per_frame"] = round(found / len(totals), 2)
    return summary


def time_detectors(frames: list[np.ndarray], device: torch.device, timer: Timer, repeats: int) -> dict:
    reference = MtcnnDetector(min_face_size=60)
    detectors = {"cv2_mtcnn_cpu": reference, f"torch_mtcnn_{device.type}": TorchMtcnnDetector(60, device=device)}
    if device.type != "cpu":
        detectors["torch_mtcnn_cpu"] = TorchMtcnnDetector(60, device="cpu")
    out = {}
    for name, detector in detectors.items():
        detector.detect(frames[0])
        times = []
        for _ in range(repeats):
            for frame in frames:
                t0 = timer.now()
                detector.detect(frame)
                times.append(timer.now() - t0)
        out[name] = summarize_ms(times)
    agreement = Agreement()
    torch_detector = detectors[f"torch_mtcnn_{device.type}"]
    for frame in frames:
        agreement.add(reference.detect(frame), torch_detector.detect(frame))
    out["agreement_vs_cv2"] = agreement.summary()
    return out


def environment(device: torch.device) -> dict:

    return {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.gpu_bench", *sys.argv[1:]]),
            "machine": machine_description(), "gpu": gpu_description(str(device)),
            "python": platform.python_version(), "torch": torch.__version__, "opencv": cv2.__version__,
            "device": str(device), "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    set_threads(args.threads)

    resolve_device(args.device)  # a bad or missing device fails here, before any model loads
    device, pipelines = make_pipelines(args.device, args.variants)  # device: after any CUDA fallback
    timer = Timer(device)
    data = {"environment": environment(device), "settings": vars(args) | {"output": str(args.output)},
            "note": "every frame a new scene (full detection each frame); Grad-CAM inline when heatmaps=on",
            "detectors": {}, "runs": []}
    print(json.dumps(data["environment"]), flush=True)
    sets = build_frame_sets(args.sizes, args.faces, args.frames)
    started = time.perf_counter()
    for fs in sets:
        frames = [s.frame for s in fs.scenes]
        data["detectors"][fs.key] = time_detectors(frames, device, timer, args.repeats)
        for name, pipeline in pipelines.items():
            for explain in (False, True):
                stats = time_variant(pipeline.process, pipeline.reset, frames, args.repeats, explain, timer)
                data["runs"].append({"variant": name, "size": fs.size, "faces": fs.faces,
                                     "heatmaps": "on" if explain else "off", **stats})
                print(f"{name:13s} {fs.key:13s} heatmaps {'on ' if explain else 'off'}  p50 {stats['p50']:8.2f} ms"
                      f"  p95 {stats['p95']:8.2f} ms  {stats['fps']:7.1f} fps  faces/frame {stats['faces_per_frame']}"
                      f"  [{time.perf_counter() - started:5.0f} s]", flush=True)
        for name, stats in data["detectors"][fs.key].items():
            if name != "agreement_vs_cv2":
                print(f"detector {name:18s} {fs.key:13s} p50 {stats['p50']:8.2f} ms  p95 {stats['p95']:8.2f} ms",
                      flush=True)
        print(f"agreement {fs.key}: {json.dumps(data['detectors'][fs.key]['agreement_vs_cv2'])}", flush=True)
    if device.type == "cuda":
        data["gpu_max_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
