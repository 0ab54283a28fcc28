"""`make demo`: the whole workflow on one machine, in one command, without a camera.

Runs the nodes as a user runs them (as demo.launch.py starts them), each in its own process: the emotion node
with the shipped model, the camera (image_source: synthetic scenes by default, or `--source` a video, an image
folder or a camera) offering `--duration` x `--rate` frames, and the recorder (`ros2 bag record` where rosbag2 is
installed, else bag_recorder). This process only watches: it saves the node's annotated and heatmap frames and
reads its /diagnostics. Then it evaluates the bag with evaluate_bag (against the scenes' ground truth when the
faces are synthetic), prints a summary and leaves under `--out`: the bag, annotated and heatmap frames, a contact
sheet PNG, the evaluation (report.json, PNGs) and each process's log.
"""
from __future__ import annotations

import argparse
import importlib.util
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
from diagnostic_msgs.msg import DiagnosticArray
from emotion_msgs.msg import EmotionArray
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ..core.model_io import ModelLoadError, read_metadata, resolve_model
from ..media.sources import SYNTHETIC_KINDS, SourceError, open_source
from ..ros.image_conversion import ImageConversionError, image_msg_to_bgr
from ..ros.spin import stop_on_signals
from .bag_io import BagError
from .contact_sheet import SheetEntry, make_contact_sheet
from .evaluate_bag import EvaluationError, evaluate, format_summary
from .processes import NodeProcess
from ..ros.transport import apply_default_transport

DEFAULT_OUT = Path("demo_output")
OUTPUTS = ("bag", "annotated", "heatmap", "eval", "truth.csv", "contact_sheet.png", "summary.txt",
           "emotion_node.log", "image_source.log", "recorder.log")
START_TIMEOUT_S = 120.0  # the node loads its model (and exports ONNX the first time) on a busy machine
STOP_GRACE_S = 30.0  # after Ctrl-C: the camera, the recorder (closing its bag) and the node stop in turn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion_demo", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("--source", default="synthetic",
                        help="synthetic (default: FER+ Test faces when ../shared/data has FER+, else CK+ scenes, "
                             "else scikit-image's astronaut) | ferplus | scenes (CK+) | astronaut | VIDEO | "
                             "IMAGE_FOLDER | camera INDEX or /dev/videoN")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of frames to offer (default 20): the camera publishes duration x rate frames")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second offered (default: a video's own rate, else 10)")
    parser.add_argument("--width", type=int, default=640,
                        help="frame width (default 640; 0 with --height 0 = the source's own size)")
    parser.add_argument("--height", type=int, default=0,
                        help="frame height (default 0: from the width, keeping the aspect ratio; synthetic: 480)")
    parser.add_argument("--model", default="", help="default | ckplus6 | a model file (default: the node's, default)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--namespace", default="", help="namespace of the nodes and topics (default: the root)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default demo_output/)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage")
    parser.add_argument("--recorder", choices=("auto", "ros2bag", "bag_recorder"), default="auto",
                        help="auto (default): `ros2 bag record` when rosbag2 is installed, else bag_recorder")
    parser.add_argument("--record-overlays", action="store_true",
                        help="also record emotion/annotated and emotion/heatmap in the bag (3x its size)")
    parser.add_argument("--save-every", type=int, default=5,
                        help="save the annotated and heatmap image of every Nth result (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic scenes")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra emotion_node parameter, e.g. --set publish_heatmap:=false (repeatable)")
    return parser


def topics_in(namespace: str) -> dict[str, str]:
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    names = {"camera": "image_raw", "info": "camera_info", "emotion": "emotion", "annotated": "emotion/annotated",
             "heatmap": "emotion/heatmap", "diagnostics": "diagnostics"}
    return {key: f"{prefix}/{name}" for key, name in names.items()}


class Collector:
    """Watches the node's outputs: counts results, keeps their captions and the node's last diagnostics, and
    saves every heatmap (the node makes them at `heatmap_rate_hz`), the annotated frame of each heatmap, and
    every Nth annotated frame."""

    def __init__(self, node: Node, out: Path, save_every: int, topics: dict[str, str]):
        self.node, self.out, self.save_every = node, out, max(1, save_every)
        self.results = 0
        self.annotated_seen = 0
        self.first_stamp: int | None = None
        self.last_result = time.monotonic()
        self.last_heatmap: float | None = None
        self.diagnostics: dict[str, str] = {}
        self.last_diagnostics = 0.0
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
        node.create_subscription(DiagnosticArray, topics["diagnostics"], self._on_diagnostics, 10)

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

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if "emotion recognition" in status.name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.last_diagnostics = time.monotonic()

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

    def sheet_entries(self) -> list[SheetEntry]:
        """Annotated frames with their heatmap (annotated-only ones if too few have one), with captions."""
        annotated, heat = self.saved["annotated"], self.saved["heatmap"]
        paired = sorted(s for s in annotated if s in heat)
        stamps = paired if len(paired) >= min(8, len(annotated)) else sorted(annotated)
        first = self.first_stamp or (stamps[0] if stamps else 0)
        return [SheetEntry(cv2.imread(str(annotated[s])), cv2.imread(str(heat[s])) if s in heat else None,
                           f"t={(s - first) / 1e9:4.1f}s  {self.captions.get(s, '')}") for s in stamps]


def _ros_values(items: list[str]) -> list[str]:
    for item in items:
        if ":=" not in item:
            raise ValueError(f"--set expects NAME:=VALUE, got '{item}'")
        yaml.safe_load(item.split(":=", 1)[1])  # a value YAML cannot read fails here, with its text
    return items


def _ros_args(namespace: str, params: list[str]) -> list[str]:
    remap = ["-r", f"__ns:=/{namespace.strip('/')}"] if namespace.strip("/") else []
    return ["--ros-args", *remap, *[arg for param in params for arg in ("-p", param)]]


def emotion_node_command(args) -> list[str]:
    """The emotion node as `ros2 run emotion_recognition_ros emotion_node` would start it."""
    params = [f"device:={args.device}"] + ([f"model:={args.model}"] if args.model else []) + _ros_values(args.set)
    return [sys.executable, "-m", "emotion_recognition_ros.ros.emotion_node", *_ros_args(args.namespace, params)]


def recorded_topics(args, topics: dict[str, str]) -> list[str]:
    record = [topics["camera"], topics["info"], topics["emotion"], topics["diagnostics"]]
    return record + ([topics["annotated"], topics["heatmap"]] if args.record_overlays else [])


def recorder_command(args, topics: dict[str, str]) -> tuple[str, list[str]]:
    """(what records, its command): `ros2 bag record` where rosbag2 is installed, else bag_recorder."""
    bag, wanted = str(args.out / "bag"), recorded_topics(args, topics)
    ros2bag = importlib.util.find_spec("ros2bag") is not None and shutil.which("ros2") is not None
    if args.recorder == "ros2bag" and not ros2bag:
        raise ValueError("--recorder ros2bag: rosbag2 (ros2 bag) is not installed")
    if args.recorder == "ros2bag" or (args.recorder == "auto" and ros2bag):
        return "ros2 bag record", ["ros2", "bag", "record", "-o", bag, "-s", args.storage, *wanted]
    return "bag_recorder", [sys.executable, "-m", "emotion_recognition_ros.tools.bag_recorder", "-o", bag,
                            "-s", args.storage, *wanted]


def camera_command(args, rate: float, frames: int, synthetic: bool) -> list[str]:
    params = [f"source:={args.source}", f"rate:={float(rate)}", f"width:={args.width}", f"height:={args.height}",
              "loop:=true", f"max_frames:={frames}", f"seed:={args.seed}",
              # The node and the recorder: the first frame waits for them, so the bag has every frame.
              "wait_for_subscribers:=2", "wait_for_info_subscribers:=1"]
    if synthetic:
        params.append(f"ground_truth_file:={args.out / 'truth.csv'}")
    return [sys.executable, "-m", "emotion_recognition_ros.ros.image_source_node", *_ros_args(args.namespace, params)]


def prepare_out(out: Path) -> None:
    """Remove the previous demo's outputs (only those: the folder may hold other things)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_inputs(args) -> tuple[str, float, bool]:
    """Fail here, in one line, on a model or a source that cannot work; (source name, rate, synthetic)."""
    if args.model:
        read_metadata(resolve_model(args.model))
    source = open_source(args.source, width=args.width or 640, height=args.height or 480, seed=args.seed)
    try:
        return source.name, float(args.rate or source.fps or 10.0), str(args.source) in SYNTHETIC_KINDS
    finally:
        source.close()


class Demo:
    """The three processes and the watcher; `stop()` ends them in the order that keeps every answer in the bag."""

    def __init__(self, args, topics: dict[str, str]):
        self.args, self.topics = args, topics
        self.processes: dict[str, NodeProcess] = {}
        self.context = Context()
        rclpy.init(context=self.context, args=[])
        self.watcher = Node("demo_watcher", context=self.context,
                            namespace="/" + args.namespace.strip("/") if args.namespace.strip("/") else "")
        self.collector = Collector(self.watcher, args.out, args.save_every, topics)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.watcher)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def start(self, name: str, argv: list[str]) -> NodeProcess:
        self.processes[name] = NodeProcess(argv, self.args.out / f"{name}.log").start()
        return self.processes[name]

    def wait_for(self, what: str, predicate, name: str, timeout: float = START_TIMEOUT_S) -> None:
        process = self.processes[name]
        if not _wait(lambda: predicate() or process.failed(), timeout) or process.failed():
            reason = process.last_line() if process.failed() else f"not within {timeout:g} s"
            raise RuntimeError(f"{what}: {reason} (log: {process.log_path})")

    def subscribed_by_others(self, topic: str) -> int:
        return sum(info.node_name != "demo_watcher" for info in self.watcher.get_subscriptions_info_by_topic(topic))

    def stop(self) -> None:
        # The recorder before the node (it still gets the node's last answers), the node last.
        for name in ("image_source", "recorder", "emotion_node"):
            if name in self.processes:
                self.processes[name].stop()
        self.executor.shutdown(timeout_sec=2)
        self.watcher.destroy_node()
        rclpy.try_shutdown(context=self.context)


def wait_until_settled(collector: Collector) -> None:
    """Let the node finish the frames it has: until results stop coming and a diagnostics message has come after
    the last one (its counts are the summary's). Grad-CAM runs after the result (at most heatmap_rate_hz), so the
    last heatmap comes later still; on a short, busy run the first one may not have come yet: give it 12 s."""
    stopped = time.monotonic()

    def settled() -> bool:
        now = time.monotonic()
        heat = collector.last_heatmap
        heat_done = (heat is not None and now - heat > 1.5) or now - stopped > 12.0
        quiet = now - collector.last_result > 1.5 and collector.last_diagnostics > collector.last_result
        return quiet and heat_done

    _wait(settled, 20.0)


def run(args) -> dict[str, Any]:
    prepare_out(args.out)
    source_name, rate, synthetic = check_inputs(args)
    offered = max(1, round(args.duration * rate))
    topics = topics_in(args.namespace)
    demo = Demo(args, topics)
    try:
        demo.start("emotion_node", emotion_node_command(args))
        demo.wait_for("the emotion node did not start", lambda: demo.watcher.count_publishers(topics["emotion"]) > 0,
                      "emotion_node")
        recorder, argv = recorder_command(args, topics)
        demo.start("recorder", argv)
        demo.wait_for(f"{recorder} did not subscribe to the node's topics", lambda: all(
            demo.subscribed_by_others(topics[key]) for key in ("emotion", "diagnostics")), "recorder")
        camera = demo.start("image_source", camera_command(args, rate, offered, synthetic))
        print(f"demo: offering {offered} frames of {source_name} at {rate:g} fps ({recorder} records) ...",
              flush=True)
        t0 = time.monotonic()
        if not _wait(lambda: not camera.alive(), args.duration * 3 + START_TIMEOUT_S):
            raise RuntimeError(f"the camera did not finish its {offered} frames (log: {camera.log_path})")
        wall = time.monotonic() - t0
        wait_until_settled(demo.collector)
    finally:
        demo.stop()
    return {"collector": demo.collector, "offered": offered, "rate": rate, "wall_s": wall, "source": source_name,
            "synthetic": synthetic, "bag": args.out / "bag", "recorder": recorder, "topics": topics}


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def drop_causes(report: dict[str, Any], diagnostics: dict[str, str]) -> str:
    """Why frames went unanswered, from the node's own counts (its last /diagnostics) and the bag. DDS reports the
    samples a best-effort reader never got (message-lost events): that is transport loss. A frame the node never
    took from its DDS queue (qos_depth deep) was overwritten by newer ones while its callbacks could not run:
    that, and a frame replaced in its latest-frame slot, is the node being busy."""
    if not diagnostics:
        return "causes unknown (no diagnostics from the node)"
    count = lambda key: int(float(diagnostics.get(key, 0)))  # noqa: E731
    transport = count("frames_lost_dds")
    overwritten = max(0, report["frames"] - count("frames_received") - transport)
    busy = count("frames_dropped") + overwritten
    return (f"{busy} while the node was busy ({count('frames_dropped')} replaced by a newer frame before it got to "
            f"them, {overwritten} overwritten in its DDS queue), {transport} lost in transport (DDS message-lost "
            f"events), {count('frames_rejected')} rejected, {count('frames_failed')} failed")


def summarize_run(args, info: dict[str, Any]) -> str:
    out: Path = args.out
    truth = out / "truth.csv" if info["synthetic"] and (out / "truth.csv").is_file() else None
    report = evaluate(info["bag"], truth=truth, out=out / "eval", image_topic=info["topics"]["camera"],
                      emotion_topic=info["topics"]["emotion"])
    collector: Collector = info["collector"]
    lat = report["latency_ms"]
    answered = report["paired_results"]
    title = (f"{answered} of {info['offered']} frames answered at {report['processed_fps']:.1f} fps "
             f"({info['rate']:g} offered), latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
    entries = collector.sheet_entries()
    sheet = make_contact_sheet(entries, out / "contact_sheet.png", title=title) if entries else None
    lines = [
        f"emotion_recognition_ros demo: {info['source']}, {info['offered']} frames offered at {info['rate']:g} fps; "
        f"the camera published {report['frames']} in {info['wall_s']:.1f} s ({report['input_fps']:.1f} fps)",
        f"node: answered {answered} of {report['frames']} frames, sustained {report['processed_fps']:.1f} fps; "
        f"dropped {report['dropped_frames']} ({100 * report['drop_rate']:.1f}%): "
        + drop_causes(report, collector.diagnostics),
        format_summary(report),
        f"bag: {info['bag']} ({_size_mb(info['bag']):.0f} MB, {args.storage}, by {info['recorder']}); annotated "
        f"frames: {len(collector.saved['annotated'])} in {out / 'annotated'}; heatmaps: "
        f"{len(collector.saved['heatmap'])} in {out / 'heatmap'}",
        f"contact sheet: {sheet}" if sheet else "contact sheet: none (the node published no annotated frames)",
        f"logs: {', '.join(str(out / f'{name}.log') for name in ('emotion_node', 'image_source', 'recorder'))}",
        f"evaluate again: scripts/run evaluate_bag {info['bag']}" + (f" --truth {truth}" if truth else "")
        + (f" --image-topic {info['topics']['camera']} --emotion-topic {info['topics']['emotion']}"
           if args.namespace.strip("/") else ""),
    ]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.rate < 0:
        print("emotion_demo: --duration must be positive and --rate not negative", file=sys.stderr)
        return 2
    # Before rclpy starts a participant, and inherited by every process started here: camera frames need Fast
    # DDS's LARGE_DATA transports (ros/transport.py); a user's own setting wins. ROS_AUTOMATIC_DISCOVERY_RANGE is
    # left alone: with LOCALHOST, rmw_fastrtps replaces the builtin transports by UDP on 127.0.0.1, and the node in
    # its own process lost 197 of 200 frames (docs/node.md, DDS transport).
    apply_default_transport()
    # SIGTERM too ends the processes it started and keeps the bag. Stopping them one after another may take
    # each its own grace; if even that is not enough, none of them outlives the demo.
    stop_on_signals(STOP_GRACE_S, before_exit=NodeProcess.kill_all)
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
