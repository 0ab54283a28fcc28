"""ROS 2 node: camera images in, EmotionArray (+ Grad-CAM heatmaps, annotated debug image, REP-155 faces) out.

A lifecycle (managed) node: parameters are declared at construction; `configure` loads the model and detector
and starts the threads; `activate` subscribes to the camera and enables the publishers; `deactivate` unsubscribes
(frames are then not even delivered, so an inactive node costs nothing); `cleanup` frees the model. With
`autostart` (the default) the constructor configures and activates it, so `ros2 run` behaves as a plain node.

Threads, and why (ros/workers.py):
- the subscription callback only stores the newest message in a one-frame slot (replacing an unprocessed
  one counts as a dropped frame), so the node never queues stale frames and never falls behind;
- a worker thread converts, runs the pipeline and publishes; the executor stays free for parameters
  and the diagnostics timer however long a frame takes;
- a heatmap thread explains the latest result at most `heatmap_rate_hz` times a second, and only while
  someone subscribes, so Grad-CAM never delays /emotion.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Iterable, NoReturn

import rclpy
import rclpy.executors
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from emotion_msgs.msg import EmotionArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..core.annotate import draw_annotations, overlay_heatmaps
from ..core.explain import resolve_layer
from ..core.config import CONFIG_FIELDS, RUNTIME_FIELDS, PipelineConfig
from ..core.device import set_threads
from ..core.pipeline import EmotionPipeline
from ..core.types import PipelineResult
from . import params, ros4hri
from .diagnostics import ERROR, OK, TRANSPORT_ADVICE, WARN, NodeStats, StampGapMonitor
from .image_conversion import ImageConversionError, bgr_to_image_msg, compressed_msg_to_bgr, image_msg_to_bgr
from .messages import emotion_array
from .qos import image_qos
from .workers import LatestSlot, RateLimitedWorker, Worker
from .spin import exit_releasing_dds, init_with_signals, shutdown_with_deadline, teardown_with_deadline

PARAMETERS = params.EMOTION_NODE_PARAMETERS
LOG_REPEAT_S = 10.0  # the same problem is logged at most once per this many seconds
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
# Grad-CAM (a forward and a backward pass per face) runs at a lower OS priority than the frame worker, so on a
# busy machine heatmaps wait for the CPU rather than /emotion (docs/node.md, how a frame flows).
HEATMAP_NICE = 10
NODE_SETTINGS = ("heatmap_rate_hz", "publish_heatmap", "heatmap_every_frame", "max_image_size")  # run-time settings the node itself keeps
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def pipeline_config(p: dict[str, Any]) -> PipelineConfig:
    """The pipeline's settings from the node's parameter values."""
    values = {name: p[name] for name in CONFIG_FIELDS}
    values["mtcnn_thresholds"] = tuple(values["mtcnn_thresholds"])
    return PipelineConfig(**values)


class EmotionNode(LifecycleNode):
    """The emotion recognition node. `EmotionNode(context=ctx, parameter_overrides={...})` runs in-process; with
    `autostart` (default) it is active when constructed, and a start-up problem raises from the constructor."""

    def __init__(self, node_name: str = "emotion_node", *, context=None, namespace: str | None = None,
                 parameter_overrides: dict[str, Any] | Iterable[Parameter] | None = None,
                 cli_args: list[str] | None = None):
        super().__init__(node_name, context=context, namespace=namespace, cli_args=cli_args,
                         parameter_overrides=params.as_overrides(parameter_overrides))
        self.pipeline: EmotionPipeline | None = None
        self._workers: list[Worker] = []
        self._subscriptions: list = []
        self._ros4hri: ros4hri.Ros4HriOutput | None = None
        self.lifecycle_state = "unconfigured"
        self.configure_error: Exception | None = None
        p = params.declare(self, PARAMETERS, params.RENAMED_PARAMETERS)
        if problem := params.check(p):
            raise ValueError(f"{self.get_name()}: {problem}")
        if p["ros4hri"] and (problem := ros4hri.missing_reason()):
            raise ValueError(f"{self.get_name()}: {problem}")
        self._logged: dict[str, float] = {}
        self.stats = NodeStats()
        self._gaps = StampGapMonitor()
        self._pipeline_lock = threading.Lock()
        for name in NODE_SETTINGS:
            setattr(self, name, p[name])
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        if p["autostart"]:
            self.start()
        # Last, so that the diagnostics publisher appearing in the graph means start-up is over.
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)  # relative: moves with the namespace
        self.create_timer(1.0 / p["diagnostics_rate_hz"], self._publish_diagnostics)

    def start(self) -> None:
        """configure + activate now; a configure failure raises its cause (ModelLoadError naming the file, ...)."""
        if self.trigger_configure() != SUCCESS:
            raise self.configure_error or RuntimeError(f"{self.get_name()}: configure failed")
        if self.trigger_activate() != SUCCESS:
            raise RuntimeError(f"{self.get_name()}: activate failed (see the log)")

    def _values(self) -> dict[str, Any]:
        return {name: self.get_parameter(name).value for name in PARAMETERS}

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model and detector, create the (lifecycle) publishers, start the threads."""
        self.configure_error = None
        p = self._values()
        try:
            set_threads(p["threads"])
            # Loads and warms up the model (raises ModelLoadError naming the file): the first frame pays nothing.
            self.pipeline = EmotionPipeline(pipeline_config(p))
            self.pipeline.warmup(explain=p["publish_heatmap"])
        except Exception as exc:  # stay unconfigured, say why; autostart re-raises it from the constructor
            self.configure_error = exc
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            return FAILURE
        self.get_logger().info(f"model {self.pipeline.model_id} on {self.pipeline.classifier.device} "
                               f"({self.pipeline.classifier.backend}), "
                               f"detector {p['detector']}, classes {self.pipeline.class_names}")
        self._create_publishers(p)
        self._start_workers()
        self.lifecycle_state = "inactive"
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._values()
        if p["ros4hri"]:
            self._ros4hri = ros4hri.Ros4HriOutput(self, p["ros4hri_image_size"], p["ros4hri_timeout_s"])
        self._create_subscriptions(p)
        self.stats.expect_input()  # diagnostics WARN after NO_INPUT_WARN_S without a frame from here on
        self.lifecycle_state = "active"
        return super().on_activate(state)  # enables the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        self.lifecycle_state = "unconfigured"
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._free()
        self.lifecycle_state = "finalized"
        return SUCCESS

    def _stop_processing(self) -> None:
        """No more frames in; the frame in flight finishes; the REP-155 faces are removed."""
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions = []
        with self._pipeline_lock:
            if self.lifecycle_state == "active":
                self.lifecycle_state = "deactivating"  # a frame taken before this is dropped, not published
            if self._ros4hri is not None:
                self._ros4hri.close()
                self._ros4hri = None

    def _free(self) -> None:
        """Stop the threads, destroy the publishers, release the model (and its CUDA memory)."""
        for worker in self._workers:
            worker.stop()
        self._workers = []
        for name in ("emotion_pub", "heatmap_pub", "annotated_pub"):
            if (pub := getattr(self, name, None)) is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, name, None)
        if self.pipeline is not None:
            cuda = self.pipeline.classifier.device.type == "cuda"
            self.pipeline.close()
            self.pipeline = None
            if cuda:
                torch.cuda.empty_cache()

    def _create_publishers(self, p: dict[str, Any]) -> None:
        # Reliable writers match both reliable and best-effort readers (recorders, RViz, tests).
        self.emotion_pub = self.create_lifecycle_publisher(EmotionArray, p["emotion_topic"], 10)
        self.heatmap_pub = self.create_lifecycle_publisher(Image, p["heatmap_topic"], 1)
        self.annotated_pub = self.create_lifecycle_publisher(Image, p["annotated_topic"], 1)

    def _start_workers(self) -> None:
        self._frames = LatestSlot()  # (message, receive time)
        self._heat_jobs = LatestSlot()  # (header, frame, result)
        self._workers = [Worker(self._frames, self._work, "emotion_worker"),
                         RateLimitedWorker(self._heat_jobs, self._publish_heatmap, "emotion_heatmaps",
                                           rate=lambda: self.heatmap_rate_hz, nice=HEATMAP_NICE)]
        for worker in self._workers:
            worker.start()

    def _create_subscriptions(self, p: dict[str, Any]) -> None:
        qos = image_qos(p["reliability"], p["qos_depth"])
        # DDS reports samples a best-effort reader never received (sequence gaps): transport loss proper,
        # as opposed to frames this node chose to skip.
        events = SubscriptionEventCallbacks(message_lost=self._on_message_lost)
        self._subscriptions = [self.create_subscription(Image, p["image_topic"], self._on_image, qos,
                                                        event_callbacks=events)]
        if p["compressed_topic"]:
            self._subscriptions.append(self.create_subscription(CompressedImage, p["compressed_topic"],
                                                                self._on_image, qos, event_callbacks=events))

    # ---------------------------------------------------------------- parameters
    def _validate_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        reason = params.check({prm.name: prm.value for prm in changed})
        layer = next((prm.value for prm in changed if prm.name == "explain_layer"), None)
        if reason is None and layer is not None and self.pipeline is not None:
            try:  # a layer the loaded network lacks, refused with the valid names
                resolve_layer(self.pipeline.classifier.model, layer)
            except ValueError as exc:
                reason = str(exc)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_parameters(self, changed: list[Parameter]) -> None:
        changes = {prm.name: prm.value for prm in changed if prm.name in RUNTIME_FIELDS}
        if "mtcnn_thresholds" in changes:
            changes["mtcnn_thresholds"] = tuple(changes["mtcnn_thresholds"])
        for prm in changed:
            if prm.name in NODE_SETTINGS:
                setattr(self, prm.name, prm.value)
        if changes:
            with self._pipeline_lock:
                if self.pipeline is not None:  # unconfigured: the next configure reads the new values
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
        if self._frames.put((msg, now)):
            self.stats.count("dropped")

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

    # ---------------------------------------------------------------- frames (worker thread)
    def _work(self, item: tuple[Any, float]) -> None:
        msg, received = item
        try:
            self._process(msg, received)
        except ImageConversionError as exc:
            self.stats.count("rejected")
            self._log_once(f"bad image: {exc}", f"dropping image: {exc}")
        except Exception as exc:  # keep serving: one bad frame must not kill the node
            self.stats.count("failed")
            self._log_once(f"pipeline: {type(exc).__name__}", f"frame failed: {type(exc).__name__}: {exc}", True)

    def _process(self, msg: Image | CompressedImage, received: float) -> None:
        frame = self.to_frame(msg)
        with self._pipeline_lock:
            if self.lifecycle_state != "active":  # deactivated while this frame waited
                return
            # heatmap_every_frame: this frame's maps made here, so its Emotion messages carry the region shares
            result = self.pipeline.process(frame, explain=self.heatmap_every_frame)
            self.publish_result(msg.header, result, frame)
        self.stats.frame_done(time.monotonic() - received, len(result.faces), result.timings)
        if self.annotated_pub.get_subscription_count() > 0:
            shown = frame if result.heatmaps is None else overlay_heatmaps(frame, result.faces, result.heatmaps,
                                                                           result.heatmap_classes)
            annotated = draw_annotations(shown, result.faces, self.pipeline.class_names)
            self.annotated_pub.publish(bgr_to_image_msg(annotated, msg.header))
        if self.publish_heatmap and self.heatmap_rate_hz > 0 and self.heatmap_pub.get_subscription_count() > 0:
            self._heat_jobs.put((msg.header, frame, result))

    def to_frame(self, msg: Image | CompressedImage):
        """An input message as a uint8 BGR frame (ImageConversionError names what is wrong with it)."""
        if isinstance(msg, CompressedImage):
            return compressed_msg_to_bgr(msg, self.max_image_size)
        return image_msg_to_bgr(msg, self.max_image_size)

    def to_message(self, header: Any, result: PipelineResult) -> EmotionArray:
        return emotion_array(header, result, self.pipeline.model_id, self.pipeline.class_names)

    def publish_result(self, header: Any, result: PipelineResult, frame) -> None:
        """Publish one frame's EmotionArray, and its REP-155 faces with ros4hri (the benchmarks time this step)."""
        self.emotion_pub.publish(self.to_message(header, result))
        if self._ros4hri is not None:
            self._ros4hri.publish(header, frame, result, self.pipeline.class_names)

    # ---------------------------------------------------------------- heatmaps (heatmap thread)
    def _publish_heatmap(self, job: tuple[Any, Any, PipelineResult]) -> None:
        header, frame, result = job
        try:
            heatmaps = result.heatmaps if result.heatmaps is not None else self.pipeline.explain(result)
            overlay = overlay_heatmaps(frame, result.faces, heatmaps, result.heatmap_classes,
                                       self.pipeline.class_names)
            self.heatmap_pub.publish(bgr_to_image_msg(overlay, header))
            self.stats.count("heatmaps")
        except Exception as exc:
            self._log_once(f"heatmap: {type(exc).__name__}", f"heatmap failed: {type(exc).__name__}: {exc}", True)

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        level, message = self.stats.health()
        state, pipeline = self.lifecycle_state, self.pipeline
        if state != "active":  # deliberately idle (a manager's choice), not a fault
            level, message = OK, f"{state}: not processing frames"
        values = [KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in snap.items()]
        values.append(KeyValue(key="lifecycle_state", value=state))
        device = str(pipeline.classifier.device) if pipeline is not None else ""
        if pipeline is not None:
            values += [KeyValue(key="device", value=device),
                       KeyValue(key="backend", value=pipeline.classifier.backend),
                       KeyValue(key="model_id", value=pipeline.model_id)]
        if self._ros4hri is not None:
            self._ros4hri.remove_stale()  # faces leave even when no frame arrives any more
        status = DiagnosticStatus(level=LEVELS[level], name=f"{self.get_name()}: emotion recognition",
                                  message=message, hardware_id=device, values=values)
        header = Header(stamp=self.get_clock().now().to_msg())
        self.diagnostics_pub.publish(DiagnosticArray(header=header, status=[status]))

    def finish_work(self) -> None:
        """Stop taking frames and stop the threads (ros/spin.py teardown_with_deadline: before DDS teardown,
        which has a deadline; idempotent)."""
        if getattr(self, "_pipeline_lock", None) is not None:
            self._stop_processing()
            self._free()

    def destroy_node(self) -> None:
        # Also called by rclpy's context clean-up on a node whose constructor failed half-way.
        self.finish_work()
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    """`ros2 run emotion_recognition_ros emotion_node`: run until stopped, then leave with the exit status."""
    code = run(args)
    # After a clean shutdown the interpreter's own teardown can loop in the garbage collector with rclpy's
    # LifecycleNode (seen with the Kilted wheels: `ros2 launch` then escalates SIGINT to SIGTERM). Everything is
    # closed by now, so leave without it, after one collection that frees DDS's shared memory (ros/spin.py).
    exit_releasing_dds(code)


def run(args: list[str] | None = None) -> int:
    """Start the node, spin it until Ctrl-C or shutdown, clean up; the exit status (1: it could not start)."""
    from ..core.model_io import ModelLoadError

    init_with_signals(args)  # SIGINT/SIGTERM always stop it, also when started with SIGINT ignored (ros/spin.py)
    try:
        node = EmotionNode(cli_args=None)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        # Ctrl-C while autostart is still configuring or activating (loading the model, importing a backend):
        # a stop, not a failure, so no traceback.
        shutdown_with_deadline()
        return 0
    except (ModelLoadError, ValueError, ParameterException) as exc:
        print(f"emotion_node: cannot start: {exc}", file=sys.stderr)
        shutdown_with_deadline(1)
        return 1
    except Exception as exc:  # e.g. an invalid topic name: still one clear line, not a traceback
        if not rclpy.ok():  # Ctrl-C (or `ros2 launch` stopping) during start-up: not an error
            return 0
        print(f"emotion_node: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        shutdown_with_deadline(1)
        return 1
    if node.lifecycle_state == "unconfigured":
        node.get_logger().info("autostart is false: waiting unconfigured (ros2 lifecycle set "
                               f"{node.get_fully_qualified_name()} configure, then activate)")
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        teardown_with_deadline(node)  # destroy_node too is DDS teardown: under the deadline
    return 0


if __name__ == "__main__":
    main()
