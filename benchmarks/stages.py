"""Per-stage latency in-process, with the node's own code through its public steps (`to_frame`, `pipeline.process`,
`publish_result`: what its worker thread runs per frame) and a real publisher (no subscriber needed). Grad-CAM is timed here inline; in the node it runs on
its own thread at most `heatmap_rate_hz` times a second and never delays /emotion.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import rclpy
import torch
from rclpy.context import Context

from emotion_recognition_ros.ros.emotion_node import EmotionNode

from .frames import FrameSet
from .stats import summarize_ms

# The benchmark's stages: the pipeline's four (core/types.py STAGES) with the node's decode and publish around them.
BENCH_STAGES = ("decode", "detect", "preprocess", "classify", "explain", "publish")


@dataclass
class StageResult:
    key: str
    frames: int
    stages: dict[str, dict] = field(default_factory=dict)  # stage -> summarize_ms
    total_ms: dict = field(default_factory=dict)  # decode .. publish without Grad-CAM
    fps: float | None = None  # 1 / mean total (Grad-CAM excluded: it is off the frame path)
    gpu_max_memory_mib: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class InProcessNode:
    """An EmotionNode in this process on a private context, fed by hand rather than by its subscription."""

    def __init__(self, overrides: dict[str, Any]):

        self.context = Context()
        rclpy.init(args=[], context=self.context)  # never our own CLI arguments
        params = {"image_topic": "/bench/stages/unused_input", "emotion_topic": "/bench/stages/emotion",
                  "publish_heatmap": False}
        params.update(overrides)
        self.node = EmotionNode("bench_stages_node", context=self.context, parameter_overrides=params)

    def close(self) -> None:
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def measure_stages(node: Any, frame_set: FrameSet, msgs: Sequence, repeats: int, explain: bool = True,
                   warmup: int = 2, progress=None) -> StageResult:
    """Time each stage over `repeats` passes of the set's frames (after `warmup` untimed frames)."""
    pipeline = node.pipeline
    cuda = pipeline.classifier.device.type == "cuda"
    if explain:
        pipeline.warmup(explain=True)
    pipeline.reset()
    for k in range(warmup):
        pipeline.process(node.to_frame(msgs[k % len(msgs)]), explain=explain)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(pipeline.classifier.device)
    times: dict[str, list[float]] = {s: [] for s in BENCH_STAGES}
    totals = []
    for _ in range(repeats):
        pipeline.reset()  # a new scene per frame: the tracker would only carry stale boxes
        for msg in msgs:
            t0 = time.perf_counter()
            frame = node.to_frame(msg)
            t1 = time.perf_counter()
            result = pipeline.process(frame, explain=explain)
            if cuda:
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            node.publish_result(msg.header, result, frame)
            t3 = time.perf_counter()
            times["decode"].append(t1 - t0)
            for stage in ("detect", "preprocess", "classify", "explain"):
                times[stage].append(result.timings.get(stage, 0.0))
            times["publish"].append(t3 - t2)
            totals.append(t3 - t0 - result.timings.get("explain", 0.0))
            if progress is not None:
                progress.update(1)
    out = StageResult(frame_set.key, len(totals), {s: summarize_ms(v) for s, v in times.items()},
                      summarize_ms(totals))
    mean = out.total_ms["mean"]
    out.fps = round(1000.0 / mean, 2) if mean else None
    if cuda:
        out.gpu_max_memory_mib = round(torch.cuda.max_memory_allocated(pipeline.classifier.device) / 2**20, 1)
    if not explain:
        out.stages.pop("explain")
    return out
