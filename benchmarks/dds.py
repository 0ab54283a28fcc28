"""The DDS harness: a node under test runs in its own process; this process publishes camera frames to it
and receives its EmotionArray answers, matching them to frames by header stamp.

Two ways to drive it:
- closed loop (`run_closed`): the next frame goes out when the answer to the last one came back. Gives
  the node's best sustained rate and its true per-frame latency (no queueing), the same for every node.
- open loop (`run_open`): frames at a fixed rate, like a camera. Gives answered vs. dropped frames and
  latency as a user sees it at that rate (used by the soak run and `--rate`).
"""
from __future__ import annotations

import array
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rclpy
from emotion_msgs.msg import EmotionArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from emotion_recognition_ros.tools.processes import NodeProcess

from .matching import PredictedFace, Score, predicted_faces
from .stats import ProcessMonitor, summarize_ms

STARTUP_TIMEOUT = 120.0  # model loading and DDS discovery on a loaded 2-core machine


def private_domain_id() -> str:
    """A ROS domain of our own unless the user chose one: parallel runs (tests, other benches) never mix."""
    return os.environ.get("ROS_DOMAIN_ID") or str(1 + (os.getpid() * 7) % 200)


SHM_PROFILE = Path(__file__).with_name("fastdds_shm.xml")


def ros_environment(transport: str = "shm") -> str:
    """Set this process's (and its children's) ROS/DDS environment; returns the transport setting used.

    transport: 'shm' = benchmarks/fastdds_shm.xml (large shared-memory segment; see that file for why),
    'env' = leave FASTDDS_* as the caller's environment has them (scripts/run sets LARGE_DATA),
    anything else = that value of FASTDDS_BUILTIN_TRANSPORTS (e.g. LARGE_DATA, DEFAULT).
    """
    os.environ["ROS_DOMAIN_ID"] = private_domain_id()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if transport == "shm":
        os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)  # it would override the XML's transports
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
    elif transport != "env":
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = transport
    return (f"profile {os.environ['FASTDDS_DEFAULT_PROFILES_FILE']}" if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
            else f"FASTDDS_BUILTIN_TRANSPORTS={os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', '(unset)')}")


@dataclass
class NodeSpec:
    """How to start a node under test."""

    name: str  # "ours" / "peer"
    argv: list[str]
    env: dict[str, str] | None = None
    image_topic: str = "/image_raw"
    result_topic: str = "/emotion"


class NodeUnderTest(NodeProcess):
    """A node under test started from its NodeSpec (the package's one node-process helper)."""

    def __init__(self, spec: NodeSpec, log_path: Path):
        super().__init__(spec.argv, log_path, spec.env)
        self.spec = spec


@dataclass
class Answer:
    stamp_ns: int
    recv_ns: int
    faces: list[PredictedFace]
    model_id: str


@dataclass
class FrameRecord:
    index: int  # index into the frame list
    stamp_ns: int
    sent_ns: int
    answer: Answer | None = None


@dataclass
class RunResult:
    node: str
    mode: str  # closed / open
    duration_s: float
    sent: int
    answered: int
    fps: float  # answers per second over the measured window
    offered_fps: float | None
    latency_ms: dict
    stale: int  # answers whose stamp is not newer than the previous answer's, or not a frame we sent
    score: dict
    resources: dict
    model_id: str = ""
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (t since start s, latency ms)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        d["fps"] = round(self.fps, 2)
        d["duration_s"] = round(self.duration_s, 2)
        return d


def make_image_messages(frames: Sequence[np.ndarray], frame_id: str = "camera") -> list:
    """bgr8 sensor_msgs/Image per frame, built once (a camera driver's copy is not what we measure)."""
    msgs = []
    for bgr in frames:
        msg = Image()
        msg.header.frame_id = frame_id
        msg.height, msg.width = int(bgr.shape[0]), int(bgr.shape[1])
        msg.encoding, msg.is_bigendian, msg.step = "bgr8", 0, int(bgr.shape[1] * 3)
        msg.data = array.array("B", np.ascontiguousarray(bgr).tobytes())
        msgs.append(msg)
    return msgs


class Driver:
    """The benchmark's own rclpy node: frames out, answers in."""

    def __init__(self, image_topic: str = "/image_raw", result_topic: str = "/emotion",
                 name: str = "bench_driver", heatmap_topic: str | None = None):

        self.context = Context()
        rclpy.init(args=[], context=self.context)  # never our own CLI arguments
        self.node = rclpy.create_node(name, context=self.context)
        # Like a camera driver: reliable, keep the last frame only. The node's best-effort
        # subscription makes the connection best effort.
        self.pub = self.node.create_publisher(Image, image_topic, QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
        # Best effort matches any publisher; answers are small, loopback does not lose them.
        self.sub = self.node.create_subscription(EmotionArray, result_topic, self._on_answer, QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.heatmaps = 0
        if heatmap_topic:  # the node computes Grad-CAM only while someone subscribes
            self.node.create_subscription(Image, heatmap_topic, self._on_heatmap, QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.answers: list[Answer] = []

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()
        if self.context.ok():
            rclpy.shutdown(context=self.context)

    def _on_answer(self, msg) -> None:
        recv = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.answers.append(Answer(stamp, recv, predicted_faces(msg), msg.model_id))

    def _on_heatmap(self, _msg) -> None:
        self.heatmaps += 1

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        from emotion_recognition_ros.ros.spin import spin_until

        return spin_until(self.executor, predicate, timeout)

    def wait_for_node(self, proc: NodeUnderTest, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until the node under test subscribes to our frames and publishes to our result topic."""
        ok = self.spin_until(lambda: not proc.alive() or (
            self.pub.get_subscription_count() > 0 and self.sub.get_publisher_count() > 0), timeout)
        if not proc.alive():
            raise RuntimeError(f"node '{proc.spec.name}' exited during start-up (exit {proc.proc.returncode}); "
                               f"log {proc.log_path}:\n{proc.log_tail()}")
        if not ok:
            raise RuntimeError(f"node '{proc.spec.name}' did not connect within {timeout:.0f} s; "
                               f"log {proc.log_path}:\n{proc.log_tail()}")

    def publish(self, msg) -> int:
        """Stamp with the wall clock (as drivers do) and publish; returns the stamp in ns."""
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        self.pub.publish(msg)
        return now

    def _answer_for(self, stamp: int) -> Answer | None:
        for a in reversed(self.answers):
            if a.stamp_ns == stamp:
                return a
        return None

    def warm_up(self, msgs: Sequence, count: int, timeout: float = 30.0) -> int:
        """Send `count` frames closed-loop and forget them (first inferences are slow). Returns answered."""
        got = 0
        for k in range(count):
            stamp = self.publish(msgs[k % len(msgs)])
            got += self.spin_until(lambda: self._answer_for(stamp) is not None, timeout)
        self.answers.clear()
        return got

    def run_closed(self, name: str, msgs: Sequence, truth: Sequence[tuple[list, list]], duration: float,
                   monitor: ProcessMonitor | None = None, answer_timeout: float = 2.0,
                   max_frames: int | None = None, progress=None) -> RunResult:
        """Closed loop over `msgs` (in order, cycling) for at least `duration` s and one pass of every frame."""
        self.answers.clear()
        records: list[FrameRecord] = []
        t_mon = monitor.now() if monitor else 0.0
        t0 = time.monotonic()
        i = 0
        while (time.monotonic() - t0 < duration or i < len(msgs)) and (max_frames is None or i < max_frames):
            k = i % len(msgs)
            stamp = self.publish(msgs[k])
            rec = FrameRecord(k, stamp, stamp)
            self.spin_until(lambda: self._answer_for(stamp) is not None, answer_timeout)
            rec.answer = self._answer_for(stamp)
            records.append(rec)
            i += 1
            if progress is not None:
                progress.update(1)
        elapsed = time.monotonic() - t0
        self.spin_for(0.2)  # late answers still count as answered (not for the rate)
        return self._result(name, "closed", records, elapsed, None, truth, monitor, t_mon)

    def run_open(self, name: str, msgs: Sequence, truth: Sequence[tuple[list, list]], duration: float, rate: float,
                 monitor: ProcessMonitor | None = None, on_tick: Callable[[float], None] | None = None,
                 progress=None) -> RunResult:
        """Frames at `rate` per second for `duration` s, like a camera; answers collected as they come."""
        self.answers.clear()
        records: list[FrameRecord] = []
        t_mon = monitor.now() if monitor else 0.0
        period = 1.0 / rate
        t0 = time.monotonic()
        i = 0
        while True:
            due = t0 + i * period
            now = time.monotonic()
            if due - t0 >= duration:
                break
            if now < due:
                self.executor.spin_once(timeout_sec=min(due - now, 0.01))
                continue
            k = i % len(msgs)
            stamp = self.publish(msgs[k])
            records.append(FrameRecord(k, stamp, stamp))
            i += 1
            if progress is not None:
                progress.update(1)
            if on_tick is not None:
                on_tick(now - t0)
        elapsed = time.monotonic() - t0
        self.spin_for(1.0)  # answers to the last frames
        by_stamp = {a.stamp_ns: a for a in self.answers}
        for rec in records:
            rec.answer = by_stamp.get(rec.stamp_ns)
        return self._result(name, "open", records, elapsed, rate, truth, monitor, t_mon)

    def _result(self, name: str, mode: str, records: list[FrameRecord], elapsed: float, rate: float | None,
                truth: Sequence[tuple[list, list]], monitor: ProcessMonitor | None, t_mon: float) -> RunResult:
        sent_stamps = {r.stamp_ns for r in records}
        # Stale: an answer for a frame we never sent in this run, or one older than an answer already given
        # (a node serving a queue of old frames, or repeating a result).
        stale, newest = 0, -1
        for a in self.answers:
            if a.stamp_ns not in sent_stamps or a.stamp_ns <= newest:
                stale += 1
            newest = max(newest, a.stamp_ns)
        answered = [r for r in records if r.answer is not None]
        t_start = records[0].sent_ns if records else 0
        latencies = [(r.answer.recv_ns - r.stamp_ns) / 1e9 for r in answered]
        score, seen = Score(), set()
        for r in answered:  # each position of the stream scored once (its first pass): the same frames for every node
            if r.index in seen:
                continue
            seen.add(r.index)
            boxes, labels = truth[r.index]
            score.add(boxes, labels, r.answer.faces)
        resources = monitor.window(t_mon) if monitor else {}
        if monitor:
            resources["peak_rss_mib"] = round(monitor.peak_rss / 2**20, 1)
        return RunResult(
            node=name, mode=mode, duration_s=elapsed, sent=len(records), answered=len(answered),
            fps=len(answered) / elapsed if elapsed > 0 else 0.0, offered_fps=rate,
            latency_ms=summarize_ms(latencies), stale=stale, score=score.as_dict(), resources=resources,
            model_id=answered[0].answer.model_id if answered else "",
            timeline=[((r.sent_ns - t_start) / 1e9, (r.answer.recv_ns - r.stamp_ns) / 1e6) for r in answered])


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
