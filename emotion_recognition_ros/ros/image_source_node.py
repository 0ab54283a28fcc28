"""`image_source`: publishes sensor_msgs/Image + CameraInfo from a video, an image folder, a camera or
embedded synthetic scenes, for users without a camera driver (and for the demo and the tests).

Frames are stamped with the node clock when they are taken from the source, like a camera driver
does, so results can be matched to frames by header stamp. For synthetic scenes the node can also
write the ground truth of each published frame (`ground_truth_file`) in the CSV format evaluate_bag reads.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from rclpy.exceptions import ParameterException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ..core.config import ParamSpec
from .image_conversion import bgr_to_image_msg
from .params import declare
from .peers import DIAGNOSE_AFTER_S, diagnose
from .qos import RELIABILITIES, image_qos
from .spin import spin_until_done
from ..media.sources import Frame, FrameSource, SourceError, open_source, resize_frame

GROUND_TRUTH_HEADER = ["stamp_ns", "x", "y", "w", "h", "label"]
# Matching is seen from the publisher's side first; a best-effort subscriber's side (with LARGE_DATA, its TCP
# channel too) can follow a while later, and drops what comes before (seen as DDS message-lost events in the
# emotion node of a 6-frame demo on a loaded 2-core machine); so the first frame waits a moment more.
SUBSCRIBERS_SETTLE_S = 1.0
REDIAGNOSE_S = 30.0  # a stall still unresolved is said again, with what the graph shows by then


# Kept in one table so the launch-file test can check names against it.
PARAMETERS: dict[str, ParamSpec] = {
    "source": ParamSpec("synthetic",
                        "What to publish: a video file, an image folder or image file, a camera index or /dev/videoN, "
                        "or 'synthetic' (FER+ Test faces pasted on backgrounds when ../shared/data has FER+, else CK+ "
                        "scenes, else scikit-image's astronaut), 'ferplus', 'scenes' (CK+) or 'astronaut'", read_only=True, any_type=True),  # `source:=0`: an int
    "rate": ParamSpec(10.0, "Frames per second to publish (0 = the video's own rate, else 10)", (0.0, 240.0)),
    "loop": ParamSpec(True, "Start over at the end of a video or folder (synthetic sources never end)"),
    "max_frames": ParamSpec(0, "Stop after this many frames (0 = no limit)", (0, 10_000_000)),
    "frame_id": ParamSpec("camera", "header.frame_id of the images and camera info"),
    "image_topic": ParamSpec("image_raw", "Topic for sensor_msgs/Image", read_only=True),
    "camera_info_topic": ParamSpec("camera_info", "Topic for sensor_msgs/CameraInfo", read_only=True),
    "encoding": ParamSpec("bgr8", "Image encoding: bgr8, rgb8 or mono8", choices=("bgr8", "rgb8", "mono8"),
                          read_only=True),
    "width": ParamSpec(0, "Resize frames to this width (0 = keep; with height 0, keeps the aspect ratio)",
                       (0, 8192), read_only=True),
    "height": ParamSpec(0, "Resize frames to this height (0 = keep)", (0, 8192), read_only=True),
    "reliability": ParamSpec("reliable", "Publisher QoS reliability: reliable or best_effort", choices=RELIABILITIES,
                             read_only=True),
    "qos_depth": ParamSpec(5, "Publisher QoS history depth", (1, 1000), read_only=True),
    "wait_for_subscribers": ParamSpec(0, "Hold frames until this many subscriptions match the image topic (0 = start "
                                      "at once), so a recording or a demo loses no first frames", (0, 100)),
    "wait_for_info_subscribers": ParamSpec(0, "Also hold frames until this many subscriptions match the camera info "
                                           "topic (a recorder: its bag then has every frame's camera info)",
                                           (0, 100)),
    "wait_for_topics": ParamSpec("", "Also hold frames until each of these topics (comma-separated; relative names "
                                 "resolve in this node's namespace) has a subscription: a recorder's 'emotion', so "
                                 "the answers to the first frames are recorded too"),
    "seed": ParamSpec(0, "Random seed of the synthetic scenes", (0, 2**31 - 1), read_only=True),
    "faces_per_frame": ParamSpec(2, "Faces per synthetic scene", (1, 6), read_only=True),
    "hold_frames": ParamSpec(15, "Frames each synthetic scene stays on screen", (1, 100000), read_only=True),
    "ground_truth_file": ParamSpec("", "Write the labelled faces of each published synthetic frame here (CSV: "
                                   "stamp_ns,x,y,w,h,label; the format evaluate_bag --truth reads). Empty = don't",
                                   read_only=True),
}


def camera_info_for(width: int, height: int, frame_id: str) -> CameraInfo:
    """A nominal pinhole model (focal length = image width, about 53 degrees across) with no distortion:
    sources without calibration still give consumers consistent geometry."""
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = width, height
    fx = fy = float(width)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class ImageSourceNode(Node):
    """Publishes frames from a `FrameSource` at a fixed rate. `done` turns true when the source ends."""

    def __init__(self, *, context=None, parameter_overrides=None, node_name: str = "image_source",
                 source: FrameSource | None = None, **kwargs):
        self._truth = None  # set before anything can fail, since rclpy destroys half-built nodes too
        self.source = source
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides or [], **kwargs)
        p = declare(self, PARAMETERS)
        p["source"] = str(p["source"])
        self.params = p
        self.source = source or open_source(
            p["source"], width=p["width"] or 640, height=p["height"] or 480, seed=p["seed"],
            faces_per_frame=p["faces_per_frame"], hold_frames=p["hold_frames"],
            warn=self.get_logger().warning)
        qos = image_qos(p["reliability"], p["qos_depth"])
        self.image_pub = self.create_publisher(Image, p["image_topic"], qos)
        self.info_pub = self.create_publisher(CameraInfo, p["camera_info_topic"], qos)
        rate = p["rate"] or self.source.fps or 10.0
        self.published = 0
        self.done = False
        self._truth = self._open_truth(p["ground_truth_file"])
        self._info: CameraInfo | None = None
        self._waiting_logged = False
        self._waiting_since: float | None = None
        self._diagnosed_at: float | None = None
        self._matched_at: float | None = None
        self.timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"publishing {self.source.name} on {p['image_topic']} at {rate:g} fps "
                               f"({p['reliability']}, {p['encoding']})")

    def _open_truth(self, path: str):
        if not path:
            return None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w", newline="")
        writer = csv.writer(handle)
        writer.writerow(GROUND_TRUTH_HEADER)
        return handle, writer

    def _tick(self) -> None:
        if self.done:
            return
        if self.published == 0 and not self._subscribers_ready():
            return
        limit = self.params["max_frames"]
        frame = self._next_frame() if not limit or self.published < limit else None
        if frame is None:
            self._finish()
            return
        self.publish(frame)

    def _subscribers_ready(self) -> bool:
        if self._matched_at is not None:
            return time.monotonic() - self._matched_at >= SUBSCRIBERS_SETTLE_S
        wanted = {self.params["image_topic"]: (self.image_pub, self.params["wait_for_subscribers"]),
                  self.params["camera_info_topic"]: (self.info_pub, self.params["wait_for_info_subscribers"])}
        short = {topic: n for topic, (pub, n) in wanted.items() if pub.get_subscription_count() < n}
        short.update({topic: 1 for topic in self._other_topics() if self.count_subscribers(topic) < 1})
        if short and not self._waiting_logged:
            waits = ", ".join(f"{n} subscriber(s) on {topic}" for topic, n in short.items())
            self.get_logger().info(f"waiting for {waits}")
            self._waiting_logged = True
            self._waiting_since = time.monotonic()
        if short:
            self._diagnose_wait(short, wanted)
            return False
        if not any(n for _, n in wanted.values()) and not self._other_topics():
            return True
        self._matched_at = time.monotonic()
        return False

    def _other_topics(self) -> list[str]:
        """wait_for_topics: topics this node does not publish that must have a subscription before frame one."""
        return [t.strip() for t in self.params["wait_for_topics"].split(",") if t.strip()]

    def _diagnose_wait(self, short: dict[str, int], wanted: dict) -> None:
        """After DIAGNOSE_AFTER_S of waiting (and every REDIAGNOSE_S after), one warning per topic saying which
        side is missing and why that is likely (ros/peers.py): a stall is named, not waited out."""
        now = time.monotonic()
        due = self._diagnosed_at + REDIAGNOSE_S if self._diagnosed_at else self._waiting_since + DIAGNOSE_AFTER_S
        if now < due:
            return
        self._diagnosed_at = now
        for topic, n in short.items():
            if topic not in wanted:  # a wait_for_topics entry: we do not publish it, so no QoS to compare
                self.get_logger().warning(f"missing peer: {topic}: no subscription after {now - self._waiting_since:.0f}"
                                          " s (wait_for_topics): is the recorder running, in this namespace?")
                continue
            pub = wanted[topic][0]
            self.get_logger().warning("missing peer: " + diagnose(self, topic, "subscriber", n,
                                                                  pub.get_subscription_count(), pub.qos_profile,
                                                                  waited_s=now - self._waiting_since))

    def _next_frame(self) -> Frame | None:
        try:
            frame = self.source.read()
            if frame is None and self.params["loop"] and self.source.rewind():
                frame = self.source.read()
        except Exception as exc:  # a camera unplugged mid-run: say so, and stop cleanly
            self.get_logger().error(f"{self.source.name}: reading a frame failed: {exc}")
            return None
        if frame is None:
            return None
        return resize_frame(frame, self.params["width"], self.params["height"])

    def publish(self, frame: Frame) -> Image:
        """Stamp `frame` with the current time and publish it with its camera info."""
        msg = bgr_to_image_msg(frame.image, encoding=self.params["encoding"])
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["frame_id"]
        if self._info is None or (self._info.width, self._info.height) != (msg.width, msg.height):
            self._info = camera_info_for(msg.width, msg.height, self.params["frame_id"])
        self._info.header.stamp = msg.header.stamp
        self.image_pub.publish(msg)
        self.info_pub.publish(self._info)
        self.published += 1
        if self._truth and frame.labels:
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            for (x, y, w, h), label in zip(frame.boxes, frame.labels):
                self._truth[1].writerow([stamp_ns, x, y, w, h, label])
            self._truth[0].flush()
        return msg

    def _finish(self) -> None:
        self.done = True
        self.timer.cancel()
        self.get_logger().info(f"{self.source.name}: finished after {self.published} frame(s)")

    def destroy_node(self) -> None:
        if self._truth:
            self._truth[0].close()
            self._truth = None
        if self.source is not None:
            self.source.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return spin_until_done("image_source", ImageSourceNode, (SourceError, ValueError, ParameterException), args)


if __name__ == "__main__":
    sys.exit(main())
