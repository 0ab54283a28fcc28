"""rosbag2 reading and writing with the `rosbags` library (no rosbag2 install needed).

Bags written here carry every message definition, emotion_msgs included (registered from its .msg files),
so `ros2 bag`, Foxglove and `rosbags` read them like bags from `ros2 bag record`. Reading goes through
`AnyReader`: it takes the definitions from the bag and falls back to ours for bags without them.
"""
from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from importlib import metadata
from typing import Any, Iterable

from rosbags.highlevel import AnyReader
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STORAGES = ("mcap", "sqlite3")
COMPRESSIONS = ("none", "zstd")
EMOTION_TYPES = ("emotion_msgs/msg/Emotion", "emotion_msgs/msg/EmotionArray")
REPO_MSG_DIR = Path(__file__).resolve().parents[1] / "emotion_msgs" / "msg"


class BagError(RuntimeError):
    """A bag that cannot be read or written; the message names the bag and the problem."""


def emotion_msg_dir() -> Path:
    """emotion_msgs' .msg files: from the ament index (installed), else from this source tree."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "emotion_msgs" / "msg"
        if (candidate / "EmotionArray.msg").is_file():
            return candidate
    if (REPO_MSG_DIR / "EmotionArray.msg").is_file():
        return REPO_MSG_DIR
    raise BagError("emotion_msgs message definitions not found (source install/setup.bash, or run from the "
                   "repository)")


def typestore():
    """A rosbags typestore of ROS 2 Kilted's standard messages plus emotion_msgs."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = emotion_msg_dir()
    types: dict[str, Any] = {}
    for name in EMOTION_TYPES:
        types.update(get_types_from_msg((msg_dir / f"{name.rsplit('/', 1)[1]}.msg").read_text(), name))
    store.register(types)
    return store


def open_writer(path: str | Path, storage: str = "mcap", compression: str = "none"):
    """An open rosbags Writer for a new bag folder `path` (rosbag2 format 9). Refuses to overwrite."""
    if storage not in STORAGES:
        raise BagError(f"unknown bag storage '{storage}' (choose from {', '.join(STORAGES)})")
    if compression not in COMPRESSIONS:
        raise BagError(f"unknown bag compression '{compression}' (choose from {', '.join(COMPRESSIONS)})")
    path = Path(path)
    if path.exists():
        raise BagError(f"{path}: already exists; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression == "zstd":
        # Per-message compression: ros2 bag and rosbags both read it, and a crash loses no finished message.
        writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    writer.open()
    return writer


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    recv_ns: int  # when the recorder received it (the bag's timestamp)
    msg: Any


@dataclass
class BagSummary:
    path: Path
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)  # topic -> (msgtype, count)
    storage: str = ""
    has_definitions: bool = False


def _reader(path: Path):
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        # `ros2 bag` wants the folder; accept the storage file too, since users point at it.
        path = path.parent
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"{path}: not a rosbag2 folder (no metadata.yaml)")
    try:
        return AnyReader([path], default_typestore=typestore())
    except Exception as exc:  # rosbags raises several types; the message is what the user needs
        raise BagError(f"{path}: cannot open bag ({exc})") from exc


def _storage_of(path: Path) -> str:
    folder = path.parent if path.is_file() else path
    for line in (folder / "metadata.yaml").read_text().splitlines():
        if line.strip().startswith("storage_identifier:"):
            return line.split(":", 1)[1].strip()
    return ""


def summarize(path: str | Path) -> BagSummary:
    """Topics, types and counts, and whether the bag carries its message definitions."""
    reader = _reader(Path(path))
    try:
        with reader:
            summary = BagSummary(Path(path))
            for topic, info in reader.topics.items():
                summary.topics[topic] = (info.msgtype or "", info.msgcount)
            summary.has_definitions = bool(reader.connections) and all(
                c.msgdef.format != MessageDefinitionFormat.NONE for c in reader.connections)
            summary.storage = _storage_of(Path(path))
            return summary
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"{path}: cannot read bag ({exc})") from exc


def read_messages(path: str | Path, topics: Iterable[str]) -> Iterable[BagMessage]:
    """Deserialised messages of `topics`, in bag-time order. Missing topics are simply absent."""
    wanted = set(topics)
    reader = _reader(Path(path))
    try:
        with reader:
            connections = [c for c in reader.connections if c.topic in wanted]
            if not connections:
                return
            for connection, recv_ns, raw in reader.messages(connections=connections):
                yield BagMessage(connection.topic, connection.msgtype, recv_ns,
                                 reader.deserialize(raw, connection.msgtype))
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"{path}: cannot read bag ({exc})") from exc


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds (works for rclpy and rosbags messages)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


# rclpy's major version -> the ROS 2 distribution it ships with (for the PyPI wheels, which set no ROS_DISTRO).
RCLPY_DISTROS = {7: "jazzy", 9: "kilted"}


def ros_distro() -> str:
    """The running ROS 2 distribution: $ROS_DISTRO (a sourced ROS 2), else from rclpy's version, else 'unknown'."""
    if os.environ.get("ROS_DISTRO"):
        return os.environ["ROS_DISTRO"]
    try:
        return RCLPY_DISTROS.get(int(metadata.version("ros-rclpy").split(".")[0]), "unknown")
    except (metadata.PackageNotFoundError, ValueError):
        return "unknown"


def stamp_ros_distro(path: str | Path) -> None:
    """Put the distribution into a closed bag's metadata.yaml (and a sqlite3 bag's tables), where rosbags
    writes its own name. (An MCAP file's embedded copy of the metadata keeps rosbags' value.)"""
    distro = ros_distro()
    meta = Path(path) / "metadata.yaml"
    if meta.is_file():
        meta.write_text(meta.read_text().replace("ros_distro: rosbags", f"ros_distro: {distro}"))
    for db in Path(path).glob("*.db3"):
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE schema SET ros_distro = ? WHERE ros_distro = 'rosbags'", (distro,))
            connection.execute("UPDATE metadata SET metadata = replace(metadata, 'ros_distro: rosbags', ?)",
                               (f"ros_distro: {distro}",))


class ThreadedBagWriter:
    """A bag writer that owns one thread: rosbags' sqlite3 storage may only be used from the thread that
    opened it, while ROS callbacks run on executor threads. Callers enqueue; the thread opens, writes and
    closes. Disk stalls then delay the queue, not the callbacks (up to `max_queue` messages)."""

    def __init__(self, path: str | Path, storage: str = "mcap", compression: str = "none", max_queue: int = 2000):
        self.path = Path(path)
        self.store = typestore()
        self.error: Exception | None = None
        self._queue: "queue.Queue" = queue.Queue(maxsize=max_queue)
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage, compression), name="bag_writer",
                                        daemon=True)
        self._thread.start()
        self._opened.wait()
        if self.error is not None:
            raise self.error

    def _run(self, storage: str, compression: str) -> None:
        try:
            writer = open_writer(self.path, storage, compression)
        except Exception as exc:
            self.error = exc
            self._opened.set()
            return
        self._opened.set()
        while (item := self._queue.get()) is not None:
            try:
                if item[0] == "connection":
                    _, topic, msgtype, qos, reply = item
                    reply.append(writer.add_connection(topic, msgtype, typestore=self.store,
                                                       offered_qos_profiles=qos))
                else:
                    _, connection, timestamp, data = item
                    writer.write(connection, timestamp, data)
            except Exception as exc:  # reported by the next call, never lost silently
                self.error = exc
                if item[0] == "connection":
                    item[-1].append(exc)
        writer.close()
        stamp_ros_distro(self.path)

    def add_connection(self, topic: str, msgtype: str, offered_qos_profiles=()):
        """Register a topic (blocks until the writer thread did it); raises what rosbags raised."""
        reply: list = []
        self._queue.put(("connection", topic, msgtype, list(offered_qos_profiles), reply))
        while not reply and self._thread.is_alive():
            time.sleep(0.001)
        if not reply:
            raise BagError(f"{self.path}: the bag writer stopped")
        if isinstance(reply[0], Exception):
            raise reply[0]
        return reply[0]

    def write(self, connection, timestamp_ns: int, data: bytes) -> None:
        self._queue.put(("message", connection, timestamp_ns, data))

    def close(self) -> None:
        """Write the remaining messages and the metadata; idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
