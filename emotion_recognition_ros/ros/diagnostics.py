"""Node health figures for /diagnostics: rate, latency percentiles, drops, faces; frame-loss detection; the
health level they add up to.

ROS-free bookkeeping (the node turns `NodeStats.snapshot()` and `health()` into a DiagnosticArray), so it can
be tested and reused without a running node.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

TRANSPORT_ADVICE = ("camera frames seem to be lost before they reach this node; with Fast DDS give the camera "
                    "AND this node the package's profile (FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_data.xml"
                    ", which scripts/run and the launch files set); see docs/reliability.md")
# An active node with no input this long is a camera that stopped or never matched: WARN with the reason, so a
# DDS stall shows in /diagnostics instead of as a silently idle node (issue 28).
NO_INPUT_WARN_S = 10.0
NO_INPUT_ADVICE = ("is the camera running, publishing the topic this node subscribes to, with the same "
                   "ROS_DOMAIN_ID and DDS transports?")


class StampGapMonitor:
    """Estimates frames lost upstream from gaps in header stamps (cameras publish at a steady rate).

    A gap longer than `factor` times the median recent period counts as round(gap / period) - 1 lost frames.
    """

    def __init__(self, factor: float = 2.5, history: int = 30):
        self.factor = factor
        self._periods: deque[float] = deque(maxlen=history)
        self._last: float | None = None
        self.lost = 0

    def update(self, stamp_s: float) -> int:
        """Feed one received frame's stamp (seconds); returns the frames thought lost just before it."""
        lost = 0
        if self._last is not None:
            gap = stamp_s - self._last
            if gap <= 0:  # stream restarted, bag looped or stamps not set: start over
                self._periods.clear()
            else:
                if len(self._periods) >= 5:
                    period = float(np.median(self._periods))
                    if gap > self.factor * period:
                        lost = int(round(gap / period)) - 1
                self._periods.append(gap)
        self._last = stamp_s
        self.lost += lost
        return lost


OK, WARN, ERROR = "ok", "warn", "error"
FAILURES = ("rejected", "failed")  # counters of frames that produced no result


def health(snap: dict[str, float], recent_failures: int, recent_frames: int) -> tuple[str, str]:
    """(level, message) from a snapshot and the outcomes of the most recent frames."""
    if recent_frames and recent_failures == recent_frames:
        return ERROR, f"every recent frame failed ({recent_failures} of {recent_frames}; see the node's log)"
    idle = snap.get("seconds_since_input", 0.0)
    if idle >= NO_INPUT_WARN_S:
        what = "no input frame yet" if snap["frames_received"] == 0 else "no input frame"
        return WARN, f"{what} for {idle:.0f} s: {NO_INPUT_ADVICE}"
    if snap["frames_processed"] == 0:
        return WARN, "no frames processed yet"
    if snap["frames_lost_dds"] > 0.05 * (snap["frames_received"] + snap["frames_lost_dds"]):
        return WARN, "DDS loses input frames (give the camera and the node the same transports: docs/reliability.md)"
    return OK, "ok"


class NodeStats:
    """Thread-safe counters the worker updates per frame and the diagnostics timer reads."""

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self._done: deque[float] = deque(maxlen=window)  # monotonic publish times
        self._latency: deque[float] = deque(maxlen=window)  # receive -> publish, seconds
        self._stage: dict[str, deque[float]] = {}
        self._outcomes: deque[bool] = deque(maxlen=30)  # recent frames: True = a result was published
        self.received = 0
        self.processed = 0
        self.dropped = 0  # replaced in the latest-frame slot before the worker got to them
        self.rejected = 0  # bad messages (conversion errors)
        self.failed = 0  # pipeline errors
        self.lost_upstream = 0  # estimated from stamp gaps
        self.lost_dds = 0  # reported by DDS (message-lost events of the input subscription)
        self.faces = 0
        self.heatmaps = 0
        self._input_clock = time.monotonic()  # the last input frame, or when input was first expected

    def expect_input(self) -> None:
        """Input is expected from now on (the node was activated): the no-input clock starts here."""
        with self._lock:
            self._input_clock = time.monotonic()

    def frame_done(self, latency: float, faces: int, timings: dict[str, float]) -> None:
        with self._lock:
            self.processed += 1
            self._outcomes.append(True)
            self.faces = faces
            self._done.append(time.monotonic())
            self._latency.append(latency)
            for stage, seconds in timings.items():
                self._stage.setdefault(stage, deque(maxlen=self._latency.maxlen)).append(seconds)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
            if name == "received":
                self._input_clock = time.monotonic()
            if name in FAILURES:
                self._outcomes.extend([False] * n)

    def health(self) -> tuple[str, str]:
        """(level, message): ERROR when every recent frame failed, WARN for no frames yet or DDS loss."""
        snap = self.snapshot()
        with self._lock:
            outcomes = list(self._outcomes)
        return health(snap, outcomes.count(False), len(outcomes))

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._done if now - t <= 5.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            lat = np.array(self._latency) * 1000.0
            out = {
                "fps": fps,
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else 0.0,
                "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else 0.0,
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_rejected": self.rejected,
                "frames_failed": self.failed,
                "frames_lost_upstream": self.lost_upstream,
                "frames_lost_dds": self.lost_dds,
                "faces": self.faces,
                "heatmaps_published": self.heatmaps,
                "seconds_since_input": now - self._input_clock,
            }
            for stage, values in self._stage.items():
                out[f"{stage}_ms_p50"] = float(np.median(values)) * 1000.0 if values else 0.0
            return out
