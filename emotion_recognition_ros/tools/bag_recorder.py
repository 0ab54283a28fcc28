"""`bag_recorder`: records topics to a rosbag2 (MCAP or sqlite3) with `rosbags`, for machines without
rosbag2 (`ros2 bag record` does the same job where ROS 2 is installed).

Subscriptions are raw (serialised CDR bytes go straight into the bag, nothing is deserialised), each topic
is subscribed as soon as a publisher appears, with the publishers' reliability (a reliable subscription
to a best-effort camera would receive nothing), and every message is stamped with its receive time, like
`ros2 bag record`. The bag holds the message definitions, emotion_msgs included.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from ..core.config import ParamSpec
from ..ros.params import declare
from ..ros.peers import DIAGNOSE_AFTER_S, diagnose
from ..ros.spin import spin_until_done
from .bag_io import COMPRESSIONS, STORAGES, BagError, ThreadedBagWriter

DEFAULT_TOPICS = ["/image_raw", "/camera_info", "/emotion", "/emotion/heatmap",
                  "/emotion/annotated", "/diagnostics"]

PARAMETERS: dict[str, ParamSpec] = {
    "output": ParamSpec("", "Bag folder to create (must not exist). Empty = rosbag2_YYYY_MM_DD-HH_MM_SS here",
                        read_only=True),
    "storage": ParamSpec("mcap", "Storage plugin: mcap or sqlite3", read_only=True),
    "compression": ParamSpec("none", "Per-message compression: none or zstd (smaller bags, more CPU)",
                             read_only=True),
    "topics": ParamSpec(DEFAULT_TOPICS, "Topics to record; each is subscribed when a publisher appears",
                        read_only=True),
    "all_topics": ParamSpec(False, "Record every topic that appears (ignores topics)", read_only=True),
    "max_duration": ParamSpec(0.0, "Stop after this many seconds (0 = until Ctrl-C)", (0.0, 1e7)),
    "discovery_period": ParamSpec(0.5, "Seconds between looks for new publishers", (0.05, 60.0), read_only=True),
}


def message_class(type_name: str):
    """'pkg/msg/Type' -> the generated Python class (rosidl_runtime_py is not in the PyPI wheels)."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _offered_qos(infos) -> list:
    """The publishers' QoS as rosbags records it, so `ros2 bag play` offers the same."""
    zero = QosTime(0, 0)
    profiles = []
    for info in infos:
        qos = info.qos_profile
        profiles.append(Qos(
            QosHistory.KEEP_ALL if qos.history == HistoryPolicy.KEEP_ALL else QosHistory.KEEP_LAST,
            int(qos.depth),
            QosReliability.RELIABLE if qos.reliability == ReliabilityPolicy.RELIABLE else QosReliability.BEST_EFFORT,
            QosDurability.TRANSIENT_LOCAL if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
            else QosDurability.VOLATILE,
            zero, zero, QosLiveliness.AUTOMATIC, zero, False))
    return profiles


class BagRecorder(Node):
    """Writes every message of the chosen topics to one bag. `close()` finishes the bag (and is idempotent)."""

    def __init__(self, *, context=None, parameter_overrides=None, node_name: str = "bag_recorder", **kwargs):
        self.writer = None  # before anything can fail: rclpy destroys half-built nodes too
        self.lock = threading.Lock()
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides or [], **kwargs)
        p = declare(self, PARAMETERS)
        if p["storage"] not in STORAGES:
            raise ValueError(f"parameter storage must be one of {', '.join(STORAGES)}, got '{p['storage']}'")
        if p["compression"] not in COMPRESSIONS:
            raise ValueError(f"parameter compression must be one of {', '.join(COMPRESSIONS)}, "
                             f"got '{p['compression']}'")
        self.params = p
        self.path = Path(p["output"] or datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S"))
        self.writer = ThreadedBagWriter(self.path, p["storage"], p["compression"])
        self.connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._skipped: set[str] = set()
        self._error_logged = False
        self._topic_subscriptions: dict[str, object] = {}
        self._diagnosed_at: float | None = None
        self.started = time.monotonic()
        self.done = False
        self.discover()
        self.timer = self.create_timer(p["discovery_period"], self._tick)
        self.get_logger().info(f"recording to {self.path} ({p['storage']}, compression {p['compression']})")

    def _wanted(self, topic: str) -> bool:
        return self.params["all_topics"] or topic in self.params["topics"]

    def discover(self) -> None:
        """Subscribe to every wanted topic that now has a publisher and is not recorded yet."""
        for topic, types in self.get_topic_names_and_types():
            if topic in self.connections or topic in self._skipped or not self._wanted(topic):
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far; wait for someone to publish
            self._subscribe(topic, types[0], publishers)

    def _subscribe(self, topic: str, type_name: str, publishers) -> None:
        try:
            cls = message_class(type_name)
            connection = self.writer.add_connection(topic, type_name, _offered_qos(publishers))
        except Exception as exc:  # a type this process cannot import, or that the typestore does not know
            self.get_logger().warning(f"not recording {topic} ({type_name}): {exc}")
            self._skipped.add(topic)
            return
        reliable = all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in publishers)
        latched = all(info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in publishers)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        self.connections[topic] = connection
        self.counts[topic] = 0
        self._topic_subscriptions[topic] = self.create_subscription(cls, topic, lambda data, t=topic: self._write(t, data),
                                                              qos, raw=True)
        self.get_logger().info(f"recording {topic} ({type_name}, {'reliable' if reliable else 'best effort'})")

    def _write(self, topic: str, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        with self.lock:
            if self.writer is None:
                return
            self.writer.write(self.connections[topic], now, data)
            self.counts[topic] += 1

    def _tick(self) -> None:
        if self.writer is not None and self.writer.error is not None and not self._error_logged:
            self.get_logger().error(f"writing {self.path} failed: {self.writer.error}")
            self._error_logged = True
        limit = self.params["max_duration"]
        if limit and time.monotonic() - self.started >= limit:
            self.done = True
            return
        self.discover()
        self._diagnose_missing()

    def _diagnose_missing(self) -> None:
        """After DIAGNOSE_AFTER_S (then every 30 s), one warning per requested topic with no matched publisher,
        naming the likely cause (ros/peers.py): a bag without its camera is said at once, not found later."""
        now = time.monotonic()
        due = self._diagnosed_at + 30.0 if self._diagnosed_at else self.started + DIAGNOSE_AFTER_S
        if self.params["all_topics"] or now < due:
            return
        self._diagnosed_at = now
        for line in self.missing_peers().values():
            self.get_logger().warning("missing peer: " + line)

    def missing_peers(self) -> dict[str, str]:
        """Each requested topic with no matched publisher that has never delivered a message, with ros/peers.py's
        one line. A publisher that came, sent and left is not missing: a camera's 1 s burst of 20 frames was
        called 'missing' after it ended in 9 of the 10 starts kept from a stress run (benchmarks/dds_stress.py, 2026-12-07)."""
        waited = time.monotonic() - self.started
        lines = {}
        for topic in self.params["topics"]:
            sub = self._topic_subscriptions.get(topic)
            if topic in self._skipped or self.counts.get(topic) or (sub is not None and sub.get_publisher_count()):
                continue
            lines[topic] = diagnose(self, topic, "publisher", 1, 0, sub.qos_profile if sub else None, waited_s=waited)
        return lines

    def close(self) -> Path:
        """Finish the bag (writes its metadata.yaml); later messages are dropped."""
        with self.lock:
            writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
            counts = ", ".join(f"{t} {n}" for t, n in self.counts.items()) or "nothing"
            self.get_logger().info(f"closed {self.path}: {counts}")
            for topic, why in self.missing_topics().items():
                self.get_logger().warning(f"{self.path} has no {topic}: {why}")
        return self.path

    def missing_topics(self) -> dict[str, str]:
        """Each requested topic the bag holds no message of, with the reason (a recording without its camera
        cannot be evaluated: say so when it is made, not when it is read)."""
        wanted = self.counts if self.params["all_topics"] else self.params["topics"]
        missing = {}
        for topic in wanted:
            if topic in self._skipped:
                missing[topic] = "its type could not be recorded"
            elif topic not in self.connections:
                missing[topic] = "no publisher appeared (is the name, and its namespace, right?)"
            elif not self.counts[topic]:
                missing[topic] = "its publisher sent nothing"
        return missing

    finish_work = close  # ros/spin.py: the bag is finished before DDS teardown, which has a deadline

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def ros_arguments(argv: list[str]) -> list[str]:
    """Plain CLI flags (`bag_recorder -o out -s sqlite3 /topic ...`) plus any `--ros-args ...` -> ROS arguments."""
    parser = argparse.ArgumentParser(prog="bag_recorder", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("topics", nargs="*", help=f"topics to record (default: {' '.join(DEFAULT_TOPICS)})")
    parser.add_argument("-o", "--output", help="bag folder to create (must not exist)")
    parser.add_argument("-s", "--storage", choices=STORAGES, help="storage plugin (default mcap)")
    parser.add_argument("--compression", choices=COMPRESSIONS, help="per-message compression (default none)")
    parser.add_argument("-a", "--all", action="store_true", help="record every topic")
    parser.add_argument("-d", "--max-duration", type=float, help="stop after this many seconds")
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    ns = parser.parse_args(argv[:split])
    params = [f"topics:=[{','.join(repr(t) for t in ns.topics)}]"] if ns.topics else []
    params += [f"{name}:={value}" for name, value in (
        ("output", ns.output), ("storage", ns.storage), ("compression", ns.compression),
        ("max_duration", None if ns.max_duration is None else float(ns.max_duration))) if value is not None]
    params += ["all_topics:=true"] if ns.all else []
    ros = argv[split:] or (["--ros-args"] if params else [])
    return ros + [arg for param in params for arg in ("-p", param)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Ctrl-C, `ros2 launch` and service managers (SIGTERM) all end with a finished bag (ros/spin.py).
    return spin_until_done("bag_recorder", BagRecorder, (BagError, ValueError, ParameterException),
                           args=["bag_recorder", *ros_arguments(argv)], grace_s=30.0)  # time to finish the bag


if __name__ == "__main__":
    sys.exit(main())
