"""How fast is the node here? Two measurements, both on pasted CK+ faces (`scenes.make_scene`):

    python -m emotion_recognition_ros.speed_probe pipeline --faces 1 --detect-every-n 1 --backend torch
        per-stage times of EmotionPipeline.process in this process (no ROS)
    python -m emotion_recognition_ros.speed_probe dds --rate 60 --seconds 20 -p detect_every_n:=3
        a camera-like publisher at --rate fps in this process, the real `emotion_node` in a child process
        (its own `--ros-args`), answers matched by stamp: answered fps, dropped frames, latency

Set FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (scripts/run does) or most 640x480 frames are lost on loopback.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _scenes(faces_per_frame: int, count: int, width: int, height: int, seed: int = 0):
    from .scenes import load_faces, make_scene

    faces = load_faces()
    rng = np.random.default_rng(seed)
    return [make_scene([faces[i] for i in rng.choice(len(faces), faces_per_frame, replace=False)], width, height,
                       rng=int(rng.integers(1 << 31))) for _ in range(count)]


def _ms(values) -> dict[str, float]:
    arr = np.asarray(values) * 1000.0
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2),
            "mean": round(float(arr.mean()), 2)}


def profile_pipeline(args) -> dict:
    import cv2
    import torch

    from .pipeline import EmotionPipeline, PipelineConfig

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    pipeline = EmotionPipeline(PipelineConfig(model_path=args.model, device=args.device,
                                              detect_every_n=args.detect_every_n, detect_scale=args.detect_scale,
                                              detect_async=args.detect_async, track_refine=args.track_refine,
                                              backend=args.backend, min_face_size=args.min_face_size))
    scenes = _scenes(args.faces, 10, args.width, args.height)
    stages: dict[str, list[float]] = {}
    totals, found = [], []
    for i in range(args.frames):
        scene = scenes[(i // 30) % len(scenes)]  # hold each scene 30 frames, like a person in view
        t = time.perf_counter()
        result = pipeline.process(scene.frame, explain=args.gradcam)
        totals.append(time.perf_counter() - t)
        found.append(len(result.faces))
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds)
    report = {"frames": args.frames, "faces_per_frame": args.faces, "mean_faces_found": float(np.mean(found)),
            "device": str(pipeline.classifier.device), "threads": args.threads,
            "detect_every_n": args.detect_every_n, "track_refine": args.track_refine, "detect_async": args.detect_async,
            "detect_scale": args.detect_scale, "backend": pipeline.classifier.backend,
            "total_ms": _ms(totals), "fps_from_mean": round(1.0 / float(np.mean(totals)), 1),
            "stages_ms": {k: _ms(v) for k, v in stages.items()}}
    pipeline.close()
    return report


def probe_dds(args) -> dict:
    import rclpy
    from emotion_msgs.msg import EmotionArray
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from .image_conversion import bgr_to_image_msg

    cmd = [sys.executable, "-m", "emotion_recognition_ros.emotion_node", "--ros-args", "-p", "device:=" + args.device]
    for item in args.param:
        cmd += ["-p", item]
    env = dict(os.environ)
    domain = getattr(args, "domain_id", None)
    if domain is not None:  # keep clear of other nodes in this process's domain
        env["ROS_DOMAIN_ID"] = str(domain)
    child = subprocess.Popen(cmd, env=env)
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    context = Context()  # its own context: callable from a process (tests) that uses rclpy otherwise too
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("speed_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    sent: dict[int, float] = {}
    answers: dict[int, tuple[float, int]] = {}

    def on_result(msg) -> None:
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        answers[key] = (time.monotonic(), len(msg.emotions))

    node.create_subscription(EmotionArray, "/emotion", on_result, 100)
    diagnostics: list = []
    from diagnostic_msgs.msg import DiagnosticArray

    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    heatmaps: list[float] = []
    if args.heatmap:  # a subscriber makes the node compute Grad-CAM overlays
        node.create_subscription(Image, "/emotion/heatmap", lambda _m: heatmaps.append(time.monotonic()), 5)
    pub = node.create_publisher(Image, "/image_raw", QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
    msgs = [bgr_to_image_msg(s.frame) for s in _scenes(args.faces, 10, args.width, args.height)]
    try:
        deadline = time.monotonic() + 120
        while pub.get_subscription_count() == 0 or node.count_publishers("/emotion") == 0:
            executor.spin_once(timeout_sec=0.1)
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the emotion node did not come up")
        time.sleep(2.0)  # let the node finish start-up logging and discovery settle
        period = 1.0 / args.rate
        start = time.monotonic()
        next_t = start
        i = 0
        while time.monotonic() - start < args.seconds:
            now = time.monotonic()
            if now >= next_t:
                msg = msgs[(i // 30) % len(msgs)]
                stamp = int((now - start) * 1e9) + 1
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                sent[stamp] = now
                pub.publish(msg)
                i += 1
                next_t += period
            executor.spin_once(timeout_sec=max(0.0, min(next_t - time.monotonic(), 0.005)))
        end = time.monotonic() + 1.5  # the last answers and one more /diagnostics message
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
    finally:
        child.send_signal(2)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    latencies = [answers[k][0] - sent[k] for k in answers if k in sent]
    faces = [answers[k][1] for k in answers]
    return {"offered_fps": args.rate, "seconds": args.seconds, "sent": len(sent), "answered": len(answers),
            "answered_fps": round(len(answers) / args.seconds, 1), "dropped": len(sent) - len(answers),
            "latency_ms": _ms(latencies) if latencies else None, "mean_faces": float(np.mean(faces)) if faces else 0,
            "heatmaps_received": len(heatmaps),
            "node_diagnostics": ({kv.key: kv.value for kv in diagnostics[-1].status[0].values}
                                 if diagnostics else None),
            "node_params": args.param, "transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "(default)")}


def main(argv: list[str] | None = None) -> int:
    from .pipeline import PipelineConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("pipeline", "dds"):
        p = sub.add_parser(mode)
        p.add_argument("--faces", type=int, default=1)
        p.add_argument("--width", type=int, default=640)
        p.add_argument("--height", type=int, default=480)
        p.add_argument("--device", default="cpu")
    pipe = sub.choices["pipeline"]
    pipe.add_argument("--model", default="")
    pipe.add_argument("--frames", type=int, default=300)
    pipe.add_argument("--threads", type=int, default=1)
    defaults = PipelineConfig()  # the node's defaults
    pipe.add_argument("--detect-every-n", type=int, default=defaults.detect_every_n)
    pipe.add_argument("--no-track-refine", dest="track_refine", action="store_false",
                      help="carry tracked boxes between full detections instead of re-measuring them")
    pipe.add_argument("--detect-scale", type=float, default=defaults.detect_scale)
    pipe.add_argument("--min-face-size", type=int, default=defaults.min_face_size)
    pipe.add_argument("--backend", default=defaults.backend, help="classifier backend: auto | torch | onnxruntime")
    pipe.add_argument("--detect-async", action="store_true", help="background detection")
    pipe.add_argument("--gradcam", action="store_true", help="also time Grad-CAM on every frame")
    dds = sub.choices["dds"]
    dds.add_argument("--rate", type=float, default=60.0)
    dds.add_argument("--seconds", type=float, default=20.0)
    dds.add_argument("--domain-id", type=int, default=None, help="ROS domain for the probe and the node")
    dds.add_argument("--heatmap", action="store_true", help="subscribe to /emotion/heatmap")
    dds.add_argument("-p", "--param", action="append", default=[], help="node parameter NAME:=VALUE (repeatable)")
    args = parser.parse_args(argv)
    report = profile_pipeline(args) if args.mode == "pipeline" else probe_dds(args)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
