"""How fast is the node here? Two measurements, both on pasted CK+ faces (`scenes.make_scene`):

    python -m benchmarks.speed_probe pipeline --faces 1 --detect-every-n 1 --backend torch
        per-stage times of EmotionPipeline.process in this process (no ROS)
    python -m benchmarks.speed_probe dds --rate 60 --seconds 20 -p detect_every_n:=3
        a camera-like publisher at --rate fps in this process, the real `emotion_node` in a child process
        (its own `--ros-args`), answers matched by stamp: answered fps, dropped frames, latency
    python -m benchmarks.speed_probe ros4hri --rate 30 --seconds 20 --rounds 3
        the same DDS run with ros4hri:=false and ros4hri:=true, alternating, side by side (run it on an idle
        machine: the two must see the same load)

Set FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (scripts/run does) or most 640x480 frames are lost on loopback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from emotion_msgs.msg import EmotionArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.media.scenes import Scene, load_faces, make_scene
from emotion_recognition_ros.media.sources import SyntheticSource
from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg
from emotion_recognition_ros.tools.processes import NodeProcess

from .stats import summarize_ms


def _scenes(faces_per_frame: int, count: int, width: int, height: int, seed: int = 0):
    """CK+ faces pasted on backgrounds; without CK+ (a clone without ../shared) scikit-image's astronaut photo,
    one real face, scaled to the frame size."""
    try:
        faces = load_faces()
    except FileNotFoundError:
        photo = SyntheticSource("astronaut", width=width, height=height).read().image
        return [Scene(photo.copy()) for _ in range(count)]
    rng = np.random.default_rng(seed)
    return [make_scene([faces[i] for i in rng.choice(len(faces), faces_per_frame, replace=False)], width, height,
                       rng=int(rng.integers(1 << 31))) for _ in range(count)]


def profile_pipeline(args) -> dict:
    set_threads(args.threads)
    pipeline = EmotionPipeline(PipelineConfig(model=args.model, device=args.device, threads=args.threads,
                                              align_faces=args.align_faces,
                                              detect_every_n=args.detect_every_n, detect_scale=args.detect_scale,
                                              detect_async=args.detect_async, track_refine=args.track_refine,
                                              backend=args.backend, min_face_size=args.min_face_size))
    scenes = _scenes(args.faces, 10, args.width, args.height)
    stages: dict[str, list[float]] = {}
    totals, found = [], []
    for i in range(args.frames):
        scene = scenes[(i // 30) % len(scenes)]  # hold each scene 30 frames, like a person in view
        t = time.perf_counter()
        result = pipeline.process(scene.frame, explain=args.explain)
        totals.append(time.perf_counter() - t)
        found.append(len(result.faces))
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds)
    report = {"frames": args.frames, "faces_per_frame": args.faces, "mean_faces_found": float(np.mean(found)),
            "device": str(pipeline.classifier.device), "threads": args.threads,
            "detect_every_n": args.detect_every_n, "track_refine": args.track_refine, "detect_async": args.detect_async,
            "detect_scale": args.detect_scale, "backend": pipeline.classifier.backend, "align_faces": args.align_faces,
            "total_ms": summarize_ms(totals), "fps_from_mean": round(1.0 / float(np.mean(totals)), 1),
            "stages_ms": {k: summarize_ms(v) for k, v in stages.items()}}
    pipeline.close()
    return report


def _node_process(args, log_dir: Path) -> NodeProcess:
    """The real emotion node in a child process, in the probe's ROS domain (clear of this process's others)."""
    cmd = [sys.executable, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args", "-p", "device:=" + args.device]
    for item in args.param:
        cmd += ["-p", item]
    env = dict(os.environ)
    if getattr(args, "domain_id", None) is not None:
        env["ROS_DOMAIN_ID"] = str(args.domain_id)
    return NodeProcess(cmd, log_dir / "emotion_node.log", env)


class _Camera:
    """A camera-like publisher plus subscriptions to the node's answers, diagnostics and (optionally) heatmaps,
    on a context of its own (callable from a process, such as the tests, that uses rclpy otherwise too)."""

    def __init__(self, args):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=getattr(args, "domain_id", None))
        self.node = rclpy.create_node("speed_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.sent: dict[int, float] = {}
        self.answers: dict[int, tuple[float, int]] = {}
        self.diagnostics: list = []
        self.heatmaps: list[float] = []
        self.node.create_subscription(EmotionArray, "/emotion", self._on_result, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        if getattr(args, "hri_faces", False):  # a REP-155 consumer of every face's topics
            self._subscribe_hri_faces()
        if args.heatmap:  # a subscriber makes the node compute Grad-CAM overlays
            self.node.create_subscription(Image, "/emotion/heatmap", lambda _m: self.heatmaps.append(time.monotonic()),
                                          5)
        self.pub = self.node.create_publisher(Image, "/image_raw", QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))

    def _subscribe_hri_faces(self, most_faces: int = 10) -> None:
        from hri_msgs.msg import Expression, FacialLandmarks, IdsList, NormalizedRegionOfInterest2D
        from sensor_msgs.msg import Image

        from emotion_recognition_ros.ros.ros4hri import FACES, face_token

        self.node.create_subscription(IdsList, f"{FACES}/tracked", lambda _m: None, 10)
        kinds = {"roi": NormalizedRegionOfInterest2D, "cropped": Image, "aligned": Image,
                 "landmarks": FacialLandmarks, "expression": Expression}
        for face_id in range(1, most_faces + 1):  # track ids count up from 1 in a fresh node
            for name, kind in kinds.items():
                self.node.create_subscription(kind, f"{FACES}/{face_token(face_id)}/{name}", lambda _m: None, 5)

    def _on_result(self, msg) -> None:
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.answers[key] = (time.monotonic(), len(msg.emotions))

    def wait_for(self, child: NodeProcess, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pub.get_subscription_count() == 0 or self.node.count_publishers("/emotion") == 0:
            self.executor.spin_once(timeout_sec=0.1)
            if time.monotonic() > deadline or child.failed():
                raise RuntimeError(f"the emotion node did not come up: {child.last_line()}")
        time.sleep(2.0)  # let the node finish start-up logging and discovery settle

    def stream(self, msgs: list, rate: float, seconds: float) -> None:
        """Publish at `rate` for `seconds` (each scene held 30 frames), then collect the last answers."""
        period, start = 1.0 / rate, time.monotonic()
        next_t, i = start, 0
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_t:
                msg = msgs[(i // 30) % len(msgs)]
                stamp = int((now - start) * 1e9) + 1
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                self.sent[stamp] = now
                self.pub.publish(msg)
                i += 1
                next_t += period
            self.executor.spin_once(timeout_sec=max(0.0, min(next_t - time.monotonic(), 0.005)))
        end = time.monotonic() + 1.5  # the last answers and one more /diagnostics message
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def report(self, args) -> dict:
        latencies = [self.answers[k][0] - self.sent[k] for k in self.answers if k in self.sent]
        faces = [n for _, n in self.answers.values()]
        last = self.diagnostics[-1].status[0].values if self.diagnostics else None
        return {"offered_fps": args.rate, "seconds": args.seconds, "sent": len(self.sent),
                "answered": len(self.answers), "answered_fps": round(len(self.answers) / args.seconds, 1),
                "dropped": len(self.sent) - len(self.answers),
                "latency_ms": summarize_ms(latencies) if latencies else None,
                "mean_faces": float(np.mean(faces)) if faces else 0, "heatmaps_received": len(self.heatmaps),
                "node_diagnostics": {kv.key: kv.value for kv in last} if last is not None else None,
                "node_params": args.param, "transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "(default)")}


def probe_dds(args) -> dict:
    """Offer frames at --rate to the real node in a child process; answered fps, drops, latency, diagnostics."""
    with tempfile.TemporaryDirectory(prefix="speed_probe_") as logs:
        child = _node_process(args, Path(logs)).start()
        camera = _Camera(args)
        try:
            camera.wait_for(child)
            camera.stream([bgr_to_image_msg(s.frame) for s in _scenes(args.faces, 10, args.width, args.height)],
                          args.rate, args.seconds)
        finally:
            child.stop()
            camera.close()
    return camera.report(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("pipeline", "dds", "ros4hri"):
        p = sub.add_parser(mode)
        p.add_argument("--faces", type=int, default=1)
        p.add_argument("--width", type=int, default=640)
        p.add_argument("--height", type=int, default=480)
        p.add_argument("--device", default="cpu")
    pipe = sub.choices["pipeline"]
    defaults = PipelineConfig()  # the node's defaults
    pipe.add_argument("--model", default=defaults.model)
    pipe.add_argument("--no-align-faces", dest="align_faces", action="store_false",
                      help="classify the crops as cut (align_faces:=false)")
    pipe.add_argument("--frames", type=int, default=300)
    pipe.add_argument("--threads", type=int, default=1)
    pipe.add_argument("--detect-every-n", type=int, default=defaults.detect_every_n)
    pipe.add_argument("--no-track-refine", dest="track_refine", action="store_false",
                      help="carry tracked boxes between full detections instead of re-measuring them")
    pipe.add_argument("--detect-scale", type=float, default=defaults.detect_scale)
    pipe.add_argument("--min-face-size", type=int, default=defaults.min_face_size)
    pipe.add_argument("--backend", default=defaults.backend, help="classifier backend: auto | torch | onnxruntime")
    pipe.add_argument("--detect-async", action="store_true", help="background detection")
    pipe.add_argument("--explain", action="store_true", help="also time Grad-CAM on every frame")
    for dds in (sub.choices["dds"], sub.choices["ros4hri"]):
        dds.add_argument("--rate", type=float, default=60.0)
        dds.add_argument("--seconds", type=float, default=20.0)
        dds.add_argument("--domain-id", type=int, default=None, help="ROS domain for the probe and the node")
        dds.add_argument("--heatmap", action="store_true", help="subscribe to /emotion/heatmap")
        dds.add_argument("-p", "--param", action="append", default=[], help="node parameter NAME:=VALUE (repeatable)")
    sub.choices["ros4hri"].add_argument("--rounds", type=int, default=3, help="off/on pairs (alternating)")
    args = parser.parse_args(argv)
    modes = {"pipeline": profile_pipeline, "dds": probe_dds, "ros4hri": compare_ros4hri}
    print(json.dumps(modes[args.mode](args), indent=2))
    return 0


def compare_ros4hri(args) -> dict:
    """probe_dds with ros4hri off and on, alternating `rounds` times, so both see the same load; the REP-155
    faces are subscribed to (cropped and aligned images are only made for subscribers)."""
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for key in runs:
            params = [*args.param, f"ros4hri:={'true' if key == 'on' else 'false'}"]
            runs[key].append(probe_dds(argparse.Namespace(**{**vars(args), "param": params, "hri_faces": key == "on"})))
    summary = {key: {"answered_fps": [r["answered_fps"] for r in reports],
                     "latency_p50_ms": [r["latency_ms"]["p50"] if r["latency_ms"] else None for r in reports]}
               for key, reports in runs.items()}
    return {"offered_fps": args.rate, "seconds": args.seconds, "faces_per_frame": args.faces, "summary": summary,
            "runs": runs}


if __name__ == "__main__":
    raise SystemExit(main())
