"""The demo's child processes: the commands that start the emotion node, the recorder and the camera as a user
starts them, and `Demo`, which starts them in turn, notices within seconds when one never matches its peers
(and says which, ros/peers.py), and stops them in the order that keeps every answer in the bag, each stop
bounded in time."""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import threading

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from ...ros.peers import diagnose
from ..processes import NodeProcess
from .watcher import Collector, wait

START_TIMEOUT_S = 120.0  # the node loads its model (and exports ONNX the first time) on a busy machine
# A start whose peers have not matched by then has stalled: a healthy start on this 2-core machine matched in
# 2-3 s (benchmarks/dds_stress.py), and the camera and the recorder name what is missing after 5 s.
MATCH_TIMEOUT_S = 30.0
STOP_GRACE_S = 30.0  # after Ctrl-C: the camera, the recorder (closing its bag) and the node stop in turn
WATCHER_TEARDOWN_S = 5.0  # the watcher's DDS teardown; past it the demo leaves without waiting (cli.main)


class DemoStall(RuntimeError):
    """A child process never matched its peers: the message names the topic, the side and the likely cause."""


def topics_in(namespace: str) -> dict[str, str]:
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    names = {"camera": "image_raw", "info": "camera_info", "emotion": "emotion", "annotated": "emotion/annotated",
             "heatmap": "emotion/heatmap", "diagnostics": "diagnostics"}
    return {key: f"{prefix}/{name}" for key, name in names.items()}


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


def diagnosis_in(process: NodeProcess) -> str:
    """The process's own last 'missing peer' line (ros/peers.py), without its log prefix; '' if none."""
    lines = [line for line in process.log_tail(200).splitlines() if "missing peer: " in line]
    return re.sub(r"^.*missing peer: ", "", lines[-1]) if lines else ""


class Demo:
    """The three processes and the watcher; `stop()` ends them in the order that keeps every answer in the bag."""

    def __init__(self, args, topics: dict[str, str]):
        self.args, self.topics = args, topics
        self.processes: dict[str, NodeProcess] = {}
        self.teardown_overran = False
        self.context = Context()
        rclpy.init(context=self.context, args=[])
        self.watcher = Node("demo_watcher", context=self.context,
                            namespace="/" + args.namespace.strip("/") if args.namespace.strip("/") else "")
        self.collector = Collector(self.watcher, args.out, args.save_every, topics)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.watcher)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()

    def start(self, name: str, argv: list[str]) -> NodeProcess:
        self.processes[name] = NodeProcess(argv, self.args.out / f"{name}.log").start()
        return self.processes[name]

    def wait_for(self, what: str, predicate, name: str, timeout: float = START_TIMEOUT_S, diagnosis=None) -> None:
        """Wait for `predicate`; if `name`'s process fails first, or `timeout` passes, raise with the process's
        own reason: its exit line, else its 'missing peer' line (ros/peers.py), else `diagnosis()`, what the
        watcher sees."""
        process = self.processes[name]
        if not wait(lambda: predicate() or process.failed(), timeout) or process.failed():
            if process.failed():
                raise RuntimeError(f"{what}: {process.last_line()} (log: {process.log_path})")
            why = diagnosis_in(process) or (diagnosis() if diagnosis else "") or "no diagnosis"
            raise DemoStall(f"{what} within {timeout:g} s: {why} (log: {process.log_path})")

    def subscribed_by_others(self, topic: str) -> int:
        return sum(info.node_name != "demo_watcher" for info in self.watcher.get_subscriptions_info_by_topic(topic))

    def first_frame_reached_node(self) -> bool:
        """The node has taken a frame from the camera (an answer, or its diagnostics counting one)."""
        received = self.collector.diagnostics.get("frames_received", "0")
        return self.collector.results > 0 or float(received) > 0

    def seen_by_watcher(self, key: str, side: str) -> str:
        """What the watcher's participant sees of `key`'s topic (a missing `side`), as ros/peers.py words it."""
        return "as the demo sees it, " + diagnose(self.watcher, self.topics[key], side, 1, 0)

    def stop(self) -> None:
        # The recorder before the node (it still gets the node's last answers), the node last; each stop is
        # bounded (NodeProcess.stop: SIGINT, then SIGTERM, then SIGKILL).
        for name in ("image_source", "recorder", "emotion_node"):
            if name in self.processes:
                self.processes[name].stop()
        # The watcher's own DDS teardown, explicitly and in order (never left to the garbage collector), in a
        # thread: if Fast DDS blocks in it, the demo still finishes (cli.main then leaves without waiting).
        done = threading.Event()

        def teardown() -> None:
            self.executor.shutdown(timeout_sec=2)
            self.spinner.join(2.0)  # its loop reads the context: only then may the context go
            self.executor.remove_node(self.watcher)
            self.watcher.destroy_node()
            rclpy.try_shutdown(context=self.context)
            self.context.destroy()
            done.set()

        threading.Thread(target=teardown, daemon=True).start()
        if not done.wait(WATCHER_TEARDOWN_S):
            self.teardown_overran = True
            print(f"demo: the watcher's DDS teardown still runs after {WATCHER_TEARDOWN_S:g} s; not waiting for it",
                  file=sys.stderr, flush=True)
