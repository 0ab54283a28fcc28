"""The demo's watcher: a node in the demo's own process that reads the emotion node's outputs, saves its
annotated and heatmap frames, keeps its last /diagnostics, and tells when the node has finished its frames."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from emotion_msgs.msg import EmotionArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ...ros.image_conversion import ImageConversionError, image_msg_to_bgr
from ..contact_sheet import SheetEntry


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

    wait(settled, 20.0)


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
