"""`make demo`: the whole workflow on one machine, in one command, without a camera.

Runs in one process (MultiThreadedExecutor, real DDS between the nodes; `--node-process` puts the emotion
node in a child process): an image source (embedded synthetic
scenes by default, or `--source` a video, an image folder or a camera), the emotion node with the shipped
model, and the bag recorder. After `--duration` seconds it stops, evaluates its own bag with evaluate_bag
(against the scenes' ground truth when the faces are synthetic), prints a summary and leaves under `--out`:
the bag, annotated and heatmap frames, a contact sheet PNG, and the evaluation (report.json, PNGs).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import rclpy
import yaml
from emotion_msgs.msg import EmotionArray
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ..core.model_io import ModelLoadError
from ..media.sources import SourceError, SyntheticSource, open_source
from ..ros.emotion_node import EmotionNode
from ..ros.image_conversion import ImageConversionError, image_msg_to_bgr
from ..ros.image_source_node import ImageSourceNode
from ..ros.transport import default_to_large_data
from .bag_io import BagError
from .bag_recorder import BagRecorder
from .contact_sheet import SheetEntry, make_contact_sheet
from .evaluate_bag import EvaluationError, evaluate, format_summary
from .processes import NodeProcess

DEFAULT_OUT = Path("demo_output")
OUTPUTS = ("bag", "annotated", "heatmap", "eval", "truth.csv", "contact_sheet.png", "summary.txt",
           "emotion_node.log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion_demo", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("--source", default="synthetic",
                        help="synthetic (default: FER+ Test faces when ../shared/data has FER+, else CK+ scenes, "
                             "else scikit-image's astronaut) | ferplus | scenes (CK+) | astronaut | VIDEO | "
                             "IMAGE_FOLDER | camera INDEX or /dev/videoN")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of frames to run (default 20)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second offered (default: a video's own rate, else 10)")
    parser.add_argument("--width", type=int, default=640,
                        help="frame width (default 640; 0 with --height 0 = the source's own size)")
    parser.add_argument("--height", type=int, default=0,
                        help="frame height (default 0: from the width, keeping the aspect ratio; synthetic: 480)")
    parser.add_argument("--model", default="", help="default | ckplus6 | a model file (default: the node's, default)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default demo_output/)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage")
    parser.add_argument("--record-overlays", action="store_true",
                        help="also record /emotion/annotated and /emotion/heatmap in the bag (3x its size)")
    parser.add_argument("--save-every", type=int, default=5,
                        help="save the annotated and heatmap image of every Nth result (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic scenes")
    parser.add_argument("--node-process", action="store_true",
                        help="run the emotion node in its own process, as `ros2 launch` would (default: in "
                             "this process, which measured faster on a busy 2-core machine)")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra emotion_node parameter, e.g. --set publish_heatmap:=false (repeatable)")
    return parser


class Collector:
    """Watches the node's outputs: counts results, keeps their captions, and saves every heatmap (the node
    makes them at `heatmap_rate_hz`), the annotated frame of each heatmap, and every Nth annotated frame."""

    def __init__(self, node, out: Path, save_every: int, topics: dict[str, str]):
        self.node, self.out, self.save_every = node, out, max(1, save_every)
        self.results = 0
        self.annotated_seen = 0
        self.first_stamp: int | None = None
        self.last_result = time.monotonic()
        self.last_heatmap: float | None = None
        self.captions: dict[int, str] = {}
        self.recent: OrderedDict[int, Any] = OrderedDict()  # annotated frames not saved (yet)
        self.heat_stamps: set[int] = set()
        self.saved: dict[str, dict[int, Path]] = {"annotated": {}, "heatmap": {}}
        self.lock = threading.Lock()
        for kind in self.saved:
            (out / kind).mkdir(parents=True, exist_ok=True)
        node.create_subscription(EmotionArray, topics["emotion"], self._on_result, qos_profile_sensor_data)
        node.create_subscription(Image, topics["annotated"], self._on_annotated, qos_profile_sensor_data)
        node.create_subscription(Image, topics["heatmap"], self._on_heatmap, qos_profile_sensor_data)

    @staticmethod
    def _stamp(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _on_result(self, msg) -> None:
        stamp = self._stamp(msg)
        faces = "; ".join(f"#{e.face_id} {e.label} {e.confidence:.2f}" for e in msg.emotions[:3]) or "no face"
        with self.lock:
            self.results += 1
            self.last_result = time.monotonic()
            self.first_stamp = stamp if self.first_stamp is None else min(self.first_stamp, stamp)
            self.captions[stamp] = faces

    def _on_annotated(self, msg) -> None:
        stamp = self._stamp(msg)
        with self.lock:
            self.annotated_seen += 1
            keep = stamp in self.heat_stamps or (self.annotated_seen - 1) % self.save_every == 0
            if not keep:
                # Its heatmap may still come (Grad-CAM runs after the result): hold the last few.
                self.recent[stamp] = msg
                while len(self.recent) > 32:
                    self.recent.popitem(last=False)
                return
        self._save("annotated", stamp, msg)

    def _on_heatmap(self, msg) -> None:
        stamp = self._stamp(msg)
        with self.lock:
            self.last_heatmap = time.monotonic()
            self.heat_stamps.add(stamp)
            annotated = self.recent.pop(stamp, None)
        self._save("heatmap", stamp, msg)
        if annotated is not None:
            self._save("annotated", stamp, annotated)

    def _save(self, kind: str, stamp: int, msg) -> None:
        try:
            image = image_msg_to_bgr(msg)
        except ImageConversionError as exc:
            self.node.get_logger().warning(f"cannot save a {kind} frame: {exc}")
            return
        path = self.out / kind / f"{stamp}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        with self.lock:
            self.saved[kind][stamp] = path

    def sheet_entries(self, wanted: int = 8):
        """Annotated frames with their heatmap (annotated-only ones if too few have one), with captions."""
        annotated, heat = self.saved["annotated"], self.saved["heatmap"]
        paired = sorted(s for s in annotated if s in heat)
        stamps = paired if len(paired) >= min(wanted, len(annotated)) else sorted(annotated)
        first = self.first_stamp or (stamps[0] if stamps else 0)
        return [SheetEntry(cv2.imread(str(annotated[s])), cv2.imread(str(heat[s])) if s in heat else None,
                           f"t={(s - first) / 1e9:4.1f}s  {self.captions.get(s, '')}") for s in stamps]


def _parse_set(items: list[str]) -> list[Any]:
    params = []
    for item in items:
        if ":=" not in item:
            raise ValueError(f"--set expects NAME:=VALUE, got '{item}'")
        name, value = item.split(":=", 1)
        params.append(Parameter(name.strip(), value=yaml.safe_load(value)))
    return params


def emotion_node_overrides(args) -> list[Any]:
    params = [Parameter("device", value=args.device)]
    if args.model:
        params.append(Parameter("model", value=str(args.model)))
    return params + _parse_set(args.set)


def emotion_node_command(args) -> list[str]:
    """The emotion node as a child process, with the same parameters as the in-process variant."""
    params = [f"device:={args.device}"] + ([f"model:={args.model}"] if args.model else [])
    for item in args.set:
        if ":=" not in item:
            raise ValueError(f"--set expects NAME:=VALUE, got '{item}'")
        params.append(item)
    return [sys.executable, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args",
            *[arg for param in params for arg in ("-p", param)]]


def prepare_out(out: Path) -> None:
    """Remove the previous demo's outputs (only those: the folder may hold other things)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


TOPICS = {"camera": "/image_raw", "info": "/camera_info", "emotion": "/emotion",
          "annotated": "/emotion/annotated", "heatmap": "/emotion/heatmap"}


def recorded_topics(args) -> list[str]:
    record = [TOPICS["camera"], TOPICS["info"], TOPICS["emotion"], "/diagnostics"]
    return record + ([TOPICS["annotated"], TOPICS["heatmap"]] if args.record_overlays else [])


def start_nodes(args, context, source, rate: float, synthetic: bool) -> dict[str, Any]:
    """The emotion node (here or in a child process), the bag recorder, the output collector and the camera."""
    out: Path = args.out
    started: dict[str, Any] = {"nodes": [], "child": None}
    if args.node_process:
        started["child"] = NodeProcess(emotion_node_command(args), out / "emotion_node.log").start()
    else:
        started["nodes"].append(EmotionNode(context=context, parameter_overrides=emotion_node_overrides(args)))
    started["recorder"] = BagRecorder(context=context, parameter_overrides=[
        Parameter("output", value=str(out / "bag")), Parameter("storage", value=args.storage),
        Parameter("topics", value=recorded_topics(args)), Parameter("discovery_period", value=0.2)])
    watcher = Node("demo_watcher", context=context)
    started["collector"] = Collector(watcher, out, args.save_every, TOPICS)
    started["camera"] = ImageSourceNode(context=context, source=source, parameter_overrides=[
        Parameter("rate", value=rate), Parameter("width", value=args.width),
        Parameter("height", value=args.height), Parameter("loop", value=True),
        Parameter("wait_for_subscribers", value=2),  # the emotion node and the recorder
        Parameter("ground_truth_file", value=str(out / "truth.csv") if synthetic else "")])
    started["nodes"] += [started["recorder"], watcher, started["camera"]]
    return started


def wait_for_start(camera, child: NodeProcess | None, out: Path) -> None:
    """The node loads its model first (seconds); the camera waits for it and the recorder."""
    started = _wait(lambda: camera.published > 0 or (child is not None and child.failed()), 120.0)
    if child is not None and child.failed():
        raise RuntimeError(f"the emotion node stopped: {child.last_line()} (log: {child.log_path})")
    if not started:
        raise RuntimeError("the camera found no subscribers within 120 s (did the emotion node start? "
                           f"see {out / 'emotion_node.log'})")


def wait_until_settled(collector: Collector) -> None:
    """Let the node finish the frames it has: until results stop coming. Grad-CAM runs after the result (at most
    heatmap_rate_hz), so the last heatmap comes later still; on a short, busy run the first one may not have come
    yet: give it a few seconds."""
    stopped = time.monotonic()

    def settled() -> bool:
        now = time.monotonic()
        heat = collector.last_heatmap
        heat_done = (heat is not None and now - heat > 1.5) or now - stopped > 6.0
        return now - collector.last_result > 1.5 and heat_done

    _wait(settled, 12.0)


def stream(args, started: dict[str, Any], source_name: str, rate: float) -> float:
    """Let the camera publish for --duration seconds, then wait for the last answers; returns the wall time."""
    camera = started["camera"]
    wait_for_start(camera, started["child"], args.out)
    t0 = time.monotonic()
    print(f"demo: running {args.duration:g} s of {source_name} at {rate:g} fps ...", flush=True)
    _wait(lambda: camera.done or time.monotonic() - t0 >= args.duration, args.duration + 5)
    camera.timer.cancel()
    camera.done = True
    wall = time.monotonic() - t0
    wait_until_settled(started["collector"])
    started["recorder"].close()
    return wall


def demo_environment() -> None:
    """Before rclpy starts: camera frames need Fast DDS's LARGE_DATA transports (ros/transport.py), and a demo
    should not talk to other machines' ROS graphs. A user's own settings win; a child node process inherits them."""
    default_to_large_data()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def run(args) -> dict[str, Any]:
    prepare_out(args.out)
    source = open_source(args.source, width=args.width or 640, height=args.height or 480, seed=args.seed)
    synthetic = isinstance(source, SyntheticSource)
    rate = float(args.rate or source.fps or 10.0)
    context = Context()
    rclpy.init(context=context, args=[])
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    started: dict[str, Any] = {"nodes": [], "child": None}
    try:
        started = start_nodes(args, context, source, rate, synthetic)
        for node in started["nodes"]:
            executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        wall = stream(args, started, source.name, rate)
    finally:
        if started["child"] is not None:
            started["child"].stop()
        executor.shutdown(timeout_sec=2)
        for node in started["nodes"]:
            node.destroy_node()
        # rclpy also destroys a node whose constructor failed (e.g. a missing model file), and such a node
        # may not survive that; the constructor's own error is the one to report.
        with contextlib.suppress(Exception):
            rclpy.try_shutdown(context=context)
    return {"collector": started["collector"], "published": started["camera"].published, "wall_s": wall,
            "source": source.name, "synthetic": synthetic, "bag": args.out / "bag"}


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def summarize_run(args, info: dict[str, Any]) -> str:
    out: Path = args.out
    truth = out / "truth.csv" if info["synthetic"] and (out / "truth.csv").is_file() else None
    report = evaluate(info["bag"], truth=truth, out=out / "eval")
    collector: Collector = info["collector"]
    entries = collector.sheet_entries()
    lat = report["latency_ms"]
    title = (f"emotion_recognition_ros demo: {report['paired_results']} results at {report['processed_fps']:.1f} fps, "
             f"latency p50 {lat['p50']:.0f} ms")
    sheet = make_contact_sheet(entries, out / "contact_sheet.png", title=title) if entries else None
    lines = [
        f"emotion_recognition_ros demo: {info['wall_s']:.1f} s of {info['source']}, "
        f"{info['published']} frames published",
        format_summary(report),
        f"bag: {info['bag']} ({_size_mb(info['bag']):.0f} MB, {args.storage}); annotated frames: "
        f"{len(collector.saved['annotated'])} in {out / 'annotated'}; heatmaps: "
        f"{len(collector.saved['heatmap'])} in {out / 'heatmap'}",
        f"contact sheet: {sheet}" if sheet else "contact sheet: none (the node published no annotated frames)",
        f"evaluate again: scripts/run evaluate_bag {info['bag']}" + (f" --truth {truth}" if truth else ""),
    ]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.rate < 0:
        print("emotion_demo: --duration must be positive and --rate not negative", file=sys.stderr)
        return 2
    demo_environment()
    try:
        info = run(args)
        print(summarize_run(args, info))
    except (SourceError, ModelLoadError, BagError, EvaluationError, ValueError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"emotion_demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emotion_demo: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
