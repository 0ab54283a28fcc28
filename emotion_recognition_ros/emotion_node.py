"""ROS 2 node: camera images in, EmotionArray (+ Grad-CAM heatmaps, annotated debug image) out.

Threads, and why:
- the subscription callback only stores the newest message in a one-frame slot (replacing an unprocessed
  one counts as a dropped frame), so the node never queues stale frames and never falls behind;
- a worker thread converts, runs the pipeline and publishes; the executor stays free for parameters
  and the diagnostics timer however long a frame takes;
- a heatmap thread explains the latest result at most `heatmap_rate_hz` times a second, and only while
  someone subscribes, so Grad-CAM never delays /emotion.
"""
from __future__ import annotations

import array
import sys
import threading
import time
from typing import Any, Iterable

import cv2
import numpy as np
import rclpy
import rclpy.executors
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from emotion_msgs.msg import Emotion, EmotionArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from .annotate import draw_annotations, overlay_heatmaps
from .classifier import BACKENDS, validate_device_spec
from .detectors import available_detectors
from .diagnostics import TRANSPORT_ADVICE, NodeStats, StampGapMonitor
from .image_conversion import ImageConversionError, bgr_to_image_msg, compressed_msg_to_bgr, image_msg_to_bgr
from .pipeline import EmotionPipeline, PipelineConfig, PipelineResult

# name -> (default, description, range (lo, hi) or None, read_only)
PARAMETERS: dict[str, tuple[Any, str, tuple | None, bool]] = {
    "model_path": ("", "classifier file (.safetensors with its .json); empty = the shipped default", None, True),
    "device": ("auto", "auto | cpu | cuda | cuda:N; auto falls back to the CPU when CUDA is unavailable", None, True),
    "backend": ("auto", "classifier inference: auto (ONNX Runtime on the CPU, torch on CUDA) | torch | onnxruntime",
                None, True),
    "detector": ("mtcnn", "face detector by name (mtcnn, full_frame)", None, True),
    "detection_threshold": (0.9, "minimum face detector confidence", (0.0, 1.0), False),
    "mtcnn_thresholds": ([0.6, 0.7, 0.7], "MTCNN P/R/O-Net stage thresholds", None, False),
    "min_face_size": (60, "smallest face to detect, pixels (full-frame scale)", (12, 4096), False),
    "detect_scale": (1.0, "run the detector on the frame scaled by this (for MTCNN, min_face_size is the surer speed lever)", (0.1, 1.0), False),
    "detect_async": (False, "while faces are tracked, detect in a background thread and classify every frame at "
                     "once (uses a second core; boxes lag the detector by a few frames)", None, False),
    "detect_every_n": (5, "full face detection at least every Nth frame while faces are tracked; in between "
                       "tracked faces are re-measured (track_refine), and a face lost makes that frame a full "
                       "detection; new faces appear within N frames (with detect_async: start a background "
                       "detection at most every Nth frame)", (1, 30), False),
    "track_refine": (True, "between full detections re-measure each tracked face near its old box (MTCNN O-Net, "
                     "~1 ms a face); false: carry the old boxes unchanged", None, False),
    "face_margin": (0.0, "extra crop margin per side, fraction of the face side, on top of the model's",
                    (-0.3, 1.0), False),
    "max_faces": (10, "most faces classified per frame (highest detector scores first)", (1, 100), False),
    "smoothing": (0.5, "EMA weight of past probabilities per track; 0 = off", (0.0, 0.99), False),
    "track_iou": (0.3, "minimum box overlap (IoU) to continue a track", (0.05, 0.95), False),
    "track_confirm_hits": (1, "detections before a track is published", (1, 30), False),
    "track_max_misses": (5, "detection rounds a track survives without a match", (0, 300), False),
    "publish_heatmap": (True, "publish Grad-CAM heatmaps (computed only while someone subscribes)", None, False),
    "heatmap_rate_hz": (2.0, "most Grad-CAM heatmaps per second (0 = never)", (0.0, 60.0), False),
    "image_topic": ("image_raw", "sensor_msgs/Image input topic (relative = in the node's namespace)", None, True),
    "compressed_topic": ("", "optional sensor_msgs/CompressedImage input topic (empty = off)", None, True),
    "emotion_topic": ("emotion", "emotion_msgs/EmotionArray output topic", None, True),
    "heatmap_topic": ("emotion/heatmap", "Grad-CAM overlay image topic", None, True),
    "annotated_topic": ("emotion/annotated", "annotated debug image topic", None, True),
    "input_reliability": ("best_effort", "input QoS reliability: best_effort (accepts any camera) or reliable",
                          None, True),
    "input_depth": (5, "input QoS history depth (keep last); the node itself keeps only the newest frame",
                    (1, 100), True),
    "threads": (1, "intra-op threads for torch and OpenCV (pin to the cores the node may use)", (1, 64), True),
    "max_image_size": (8192, "largest accepted image side, pixels", (16, 65535), False),
    "diagnostics_rate_hz": (1.0, "rate of /diagnostics messages", (0.1, 10.0), True),
}
CONFIG_KEYS = {"min_face_size", "detection_threshold", "detect_scale", "detect_every_n", "detect_async", "track_refine",
               "face_margin", "max_faces", "smoothing", "track_iou", "track_confirm_hits", "track_max_misses"}
LOG_REPEAT_S = 10.0  # the same problem is logged at most once per this many seconds


def _descriptor(name: str, description: str, bounds: tuple | None, read_only: bool, default: Any) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=name, description=description, read_only=read_only)
    if bounds is not None and isinstance(default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]), to_value=float(bounds[1]))]
    elif bounds is not None and isinstance(default, int):
        desc.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]), step=1)]
    return desc


def _as_overrides(overrides: dict[str, Any] | Iterable[Parameter] | None) -> list[Parameter]:
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [Parameter(k, value=v) for k, v in overrides.items()]
    return list(overrides)


class EmotionNode(Node):
    """The emotion recognition node. `EmotionNode(context=ctx, parameter_overrides={...})` runs in-process."""

    def __init__(self, node_name: str = "emotion_node", *, context=None, namespace: str | None = None,
                 parameter_overrides: dict[str, Any] | Iterable[Parameter] | None = None,
                 cli_args: list[str] | None = None):
        super().__init__(node_name, context=context, namespace=namespace, cli_args=cli_args,
                         parameter_overrides=_as_overrides(parameter_overrides))
        for name, (default, description, bounds, read_only) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(name, description, bounds, read_only, default))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        problem = self._check(p)
        if problem:
            raise ValueError(f"{self.get_name()}: {problem}")

        # Oversubscribed intra-op threads made detectors 10-30x slower on a loaded 2-core machine.
        torch.set_num_threads(p["threads"])
        cv2.setNumThreads(p["threads"])
        self._logged: dict[str, float] = {}
        self.stats = NodeStats()
        self._gaps = StampGapMonitor()
        self.max_image_size = p["max_image_size"]
        self.heatmap_rate_hz = p["heatmap_rate_hz"]
        self.publish_heatmap = p["publish_heatmap"]

        config = PipelineConfig(model_path=p["model_path"], device=p["device"], backend=p["backend"],
                                detector=p["detector"],
                                mtcnn_thresholds=tuple(p["mtcnn_thresholds"]),
                                **{k: p[k] for k in CONFIG_KEYS})
        # Loads and warms up the model (raises ModelLoadError naming the file): the first frame pays nothing.
        self.pipeline = EmotionPipeline(config)
        self._pipeline_lock = threading.Lock()
        self.get_logger().info(f"model {self.pipeline.model_id} on {self.pipeline.classifier.device} "
                               f"({self.pipeline.classifier.backend}), "
                               f"detector {p['detector']}, classes {self.pipeline.class_names}")

        reliability = (ReliabilityPolicy.RELIABLE if p["input_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p["input_depth"], reliability=reliability)
        # Reliable writers match both reliable and best-effort readers (recorders, RViz, tests).
        self.emotion_pub = self.create_publisher(EmotionArray, p["emotion_topic"], 10)
        self.heatmap_pub = self.create_publisher(Image, p["heatmap_topic"], 1)
        self.annotated_pub = self.create_publisher(Image, p["annotated_topic"], 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)  # relative: moves with the namespace

        self._slot_lock = threading.Condition()
        self._slot: tuple[Any, float] | None = None
        self._heat_lock = threading.Condition()
        self._heat_job: tuple[Any, np.ndarray, PipelineResult] | None = None
        self._running = True
        self._worker = threading.Thread(target=self._work, name="emotion_worker", daemon=True)
        self._heat_worker = threading.Thread(target=self._heat_work, name="emotion_heatmaps", daemon=True)
        self._worker.start()
        self._heat_worker.start()

        # DDS reports samples a best-effort reader never received (sequence gaps): transport loss proper,
        # as opposed to frames this node chose to skip.
        events = SubscriptionEventCallbacks(message_lost=self._on_message_lost)
        self.create_subscription(Image, p["image_topic"], self._on_image, input_qos, event_callbacks=events)
        if p["compressed_topic"]:
            self.create_subscription(CompressedImage, p["compressed_topic"], self._on_image, input_qos,
                                     event_callbacks=events)
        self.create_timer(1.0 / p["diagnostics_rate_hz"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    # ---------------------------------------------------------------- parameters
    @staticmethod
    def _check(p: dict[str, Any]) -> str | None:
        """The reason a set of parameter values is unusable, or None (ranges are checked by rclpy)."""
        if "device" in p and (reason := validate_device_spec(p["device"])):
            return reason
        if "backend" in p and p["backend"] not in BACKENDS:
            return f"unknown backend '{p['backend']}' (use {', '.join(BACKENDS)})"
        if "detector" in p and p["detector"] not in available_detectors():
            return f"unknown detector '{p['detector']}' (available: {', '.join(available_detectors())})"
        if "input_reliability" in p and p["input_reliability"] not in ("best_effort", "reliable"):
            return f"input_reliability must be best_effort or reliable, got '{p['input_reliability']}'"
        if "mtcnn_thresholds" in p:
            t = list(p["mtcnn_thresholds"])
            if len(t) != 3 or not all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in t):
                return f"mtcnn_thresholds must be three numbers in [0, 1], got {t}"
        for key in ("image_topic", "emotion_topic", "heatmap_topic", "annotated_topic"):
            if key in p and not p[key]:
                return f"{key} must not be empty"
        return None

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        reason = self._check({prm.name: prm.value for prm in params})
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_parameters(self, params: list[Parameter]) -> None:
        changes = {prm.name: prm.value for prm in params if prm.name in CONFIG_KEYS}
        for prm in params:
            if prm.name == "mtcnn_thresholds":
                changes["mtcnn_thresholds"] = tuple(prm.value)
            elif prm.name == "heatmap_rate_hz":
                self.heatmap_rate_hz = prm.value
            elif prm.name == "publish_heatmap":
                self.publish_heatmap = prm.value
            elif prm.name == "max_image_size":
                self.max_image_size = prm.value
        if changes:
            with self._pipeline_lock:
                self.pipeline.reconfigure(**changes)

    # ---------------------------------------------------------------- input
    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Keep only the newest frame; the worker takes it when it is free."""
        now = time.monotonic()
        self.stats.count("received")
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        # Only an estimate (a camera's own timing jitter makes gaps too), so it is counted, not warned about;
        # the warning comes from DDS's message-lost events, which are exact.
        if stamp > 0 and (lost := self._gaps.update(stamp)):
            self.stats.count("lost_upstream", lost)
        with self._slot_lock:
            if self._slot is not None:
                self.stats.count("dropped")
            self._slot = (msg, now)
            self._slot_lock.notify()

    def _on_message_lost(self, info) -> None:
        self.stats.count("lost_dds", int(info.total_count_change))
        self._log_once("dds loss", f"DDS lost {info.total_count_change} frame(s) on the way here "
                                   f"({info.total_count} so far): {TRANSPORT_ADVICE}")

    def _log_once(self, key: str, text: str, error: bool = False) -> None:
        """Log a problem at most once per LOG_REPEAT_S for the same key (bad streams repeat every frame)."""
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) < LOG_REPEAT_S:
            return
        if len(self._logged) > 256:
            self._logged.clear()
        self._logged[key] = now
        (self.get_logger().error if error else self.get_logger().warning)(text)

    def _work(self) -> None:
        while self._running:
            with self._slot_lock:
                while self._slot is None and self._running:
                    self._slot_lock.wait(timeout=0.5)
                if not self._running:
                    return
                (msg, received), self._slot = self._slot, None
            try:
                self._process(msg, received)
            except ImageConversionError as exc:
                self.stats.count("rejected")
                self._log_once(f"bad image: {exc}", f"dropping image: {exc}")
            except Exception as exc:  # keep serving: one bad frame must not kill the node
                self.stats.count("failed")
                self._log_once(f"pipeline: {type(exc).__name__}", f"frame failed: {type(exc).__name__}: {exc}", True)

    def _process(self, msg: Image | CompressedImage, received: float) -> None:
        if isinstance(msg, CompressedImage):
            frame = compressed_msg_to_bgr(msg, self.max_image_size)
        else:
            frame = image_msg_to_bgr(msg, self.max_image_size)
        with self._pipeline_lock:
            result = self.pipeline.process(frame)
        self.emotion_pub.publish(self.to_message(msg.header, result))
        self.stats.frame_done(time.monotonic() - received, len(result.faces), result.timings)
        if self.annotated_pub.get_subscription_count() > 0:
            annotated = draw_annotations(frame, result.faces, self.pipeline.class_names)
            self.annotated_pub.publish(bgr_to_image_msg(annotated, msg.header))
        if self.publish_heatmap and self.heatmap_rate_hz > 0 and self.heatmap_pub.get_subscription_count() > 0:
            with self._heat_lock:
                self._heat_job = (msg.header, frame, result)
                self._heat_lock.notify()

    def to_message(self, header: Any, result: PipelineResult) -> EmotionArray:
        out = EmotionArray(header=header, model_id=self.pipeline.model_id)
        names = self.pipeline.class_names
        for face in result.faces:
            k = face.label_index
            x, y, w, h = face.roi
            out.emotions.append(Emotion(
                face_id=face.track_id, label=names[k], confidence=float(face.scores[k]), class_names=names,
                scores=array.array("f", face.scores.tolist()), raw_scores=array.array("f", face.raw_scores.tolist()),
                roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
                detection_score=float(face.detection.score),
                landmarks=array.array("f", face.detection.landmarks.reshape(-1).tolist()),
                track_age=face.track_age))
        return out

    # ---------------------------------------------------------------- heatmaps
    def _heat_work(self) -> None:
        last = 0.0
        while self._running:
            with self._heat_lock:
                while self._heat_job is None and self._running:
                    self._heat_lock.wait(timeout=0.5)
                if not self._running:
                    return
                job, self._heat_job = self._heat_job, None
            rate = self.heatmap_rate_hz
            if rate <= 0:
                continue
            wait = last + 1.0 / rate - time.monotonic()
            if wait > 0:  # rate limit: wait (waking early on shutdown), then explain whatever is newest by then
                with self._heat_lock:
                    self._heat_lock.wait_for(lambda: not self._running, timeout=wait)
                    job, self._heat_job = self._heat_job or job, None
                if not self._running:
                    return
            last = time.monotonic()
            header, frame, result = job
            try:
                cams = self.pipeline.explain(result)
                self.heatmap_pub.publish(bgr_to_image_msg(overlay_heatmaps(frame, result.faces, cams), header))
                self.stats.count("heatmaps")
            except Exception as exc:
                self._log_once(f"heatmap: {type(exc).__name__}", f"heatmap failed: {type(exc).__name__}: {exc}", True)

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        level = DiagnosticStatus.OK
        message = "ok"
        if snap["frames_processed"] == 0:
            level, message = DiagnosticStatus.WARN, "no frames processed yet"
        elif snap["frames_lost_dds"] > 0.05 * (snap["frames_received"] + snap["frames_lost_dds"]):
            level, message = DiagnosticStatus.WARN, "DDS loses input frames (see FASTDDS_BUILTIN_TRANSPORTS)"
        values = [KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in snap.items()]
        values += [KeyValue(key="device", value=str(self.pipeline.classifier.device)),
                   KeyValue(key="backend", value=self.pipeline.classifier.backend),
                   KeyValue(key="model_id", value=self.pipeline.model_id)]
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: emotion recognition", message=message,
                                  hardware_id=str(self.pipeline.classifier.device), values=values)
        self.diagnostics_pub.publish(DiagnosticArray(header=self._stamp_header(), status=[status]))

    def _stamp_header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    def destroy_node(self) -> None:
        # Also called by rclpy's context clean-up on a node whose constructor failed half-way.
        self._running = False
        for cond in (getattr(self, "_slot_lock", None), getattr(self, "_heat_lock", None)):
            if cond is not None:
                with cond:
                    cond.notify_all()
        for thread in (getattr(self, "_worker", None), getattr(self, "_heat_worker", None)):
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5.0)
        if getattr(self, "pipeline", None) is not None:
            self.pipeline.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from .model_io import ModelLoadError

    rclpy.init(args=args)
    try:
        node = EmotionNode(cli_args=None)
    except (ModelLoadError, ValueError, ParameterException) as exc:
        print(f"emotion_node: cannot start: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    except Exception as exc:  # e.g. an invalid topic name: still one clear line, not a traceback
        print(f"emotion_node: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
