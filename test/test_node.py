"""The real EmotionNode in-process, talked to over Fast DDS by a peer node: frames in, EmotionArrays out."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, spin_until
from emotion_recognition_ros.core.data_paths import missing_reason
from emotion_recognition_ros.core import model_io
from emotion_recognition_ros.core.alignment import level_crop
from emotion_recognition_ros.core.classes import CKPLUS6, EMOTIONS
from emotion_recognition_ros.core.prior_correction import adjust_log_probs
from emotion_recognition_ros.core.preprocess import faces_to_batch
from emotion_recognition_ros.media.scenes import make_scene
from emotion_recognition_ros.core.tracking.tracker import iou

COMPRESSED = "/image_raw/compressed"


class Rig:
    """A context with the emotion node and a peer that publishes frames and collects the outputs."""

    def __init__(self, overrides: dict | None = None, cli_args: list[str] | None = None, emotion_topic="/emotion",
                 image_topic="/image_raw"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from diagnostic_msgs.msg import DiagnosticArray
        from emotion_msgs.msg import EmotionArray
        from sensor_msgs.msg import CompressedImage, Image

        from emotion_recognition_ros.ros.emotion_node import EmotionNode

        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        # Synchronous detection: every frame's faces come from that frame, so answers are deterministic.
        # (The background detection mode is tested in test_pipeline.py and by test_async_detection_over_dds.)
        defaults = {"device": "cpu"} if cli_args else {"device": "cpu", "detect_async": False}
        self.node = EmotionNode(context=self.context, parameter_overrides={**defaults, **(overrides or {})},
                                cli_args=cli_args)
        self.peer = rclpy.create_node("test_peer", context=self.context)
        self.results: list = []
        self.diagnostics: list = []
        self.peer.create_subscription(EmotionArray, emotion_topic, self.results.append, 50)
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        # A reliable publisher, like most camera drivers: it must match the node's best-effort reader.
        self.pub = self.peer.create_publisher(Image, image_topic, 10)
        self.cpub = self.peer.create_publisher(CompressedImage, COMPRESSED, 10)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        assert self.spin(lambda: self.pub.get_subscription_count() > 0, 10), "node never subscribed"
        self.stamp = 1000

    def spin(self, predicate, timeout: float = 10.0) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def image(self, frame: np.ndarray, stamp: int | None = None):
        from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

        msg = bgr_to_image_msg(frame)
        return self.stamped(msg, stamp)

    def stamped(self, msg, stamp: int | None = None):
        self.stamp = stamp if stamp is not None else self.stamp + 1
        msg.header.stamp.sec = self.stamp
        msg.header.frame_id = "camera"
        return msg

    def send(self, msg, publisher=None, timeout: float = 10.0):
        """Publish one message and wait for the EmotionArray carrying its stamp."""
        stamp = msg.header.stamp.sec
        (publisher or self.pub).publish(msg)
        assert self.spin(lambda: any(r.header.stamp.sec == stamp for r in self.results), timeout), \
            f"no result for stamp {stamp}; stats {self.node.stats.snapshot()}"
        return next(r for r in self.results if r.header.stamp.sec == stamp)

    def close(self) -> None:
        import rclpy

        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.peer.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def rig(faces):
    rig = Rig({"compressed_topic": COMPRESSED})
    yield rig
    rig.close()


def test_one_face_frame_gives_one_emotion_with_the_frame_stamp(rig, faces):
    scene = make_scene([faces[20]], rng=1)
    out = rig.send(rig.image(scene.frame))
    assert out.header.frame_id == "camera" and out.model_id == rig.node.pipeline.model_id
    assert len(out.emotions) == 1
    e = out.emotions[0]
    roi = (e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height)
    assert iou(roi, scene.boxes[0]) > 0.7, (roi, scene.boxes[0])
    assert abs(sum(e.scores) - 1.0) < 1e-4 and abs(sum(e.raw_scores) - 1.0) < 1e-4
    # The class list travels with each face: the shipped default model's eight, in its output order.
    assert list(e.class_names) == rig.node.pipeline.class_names == list(EMOTIONS)
    assert len(e.scores) == len(e.raw_scores) == len(EMOTIONS)
    assert e.label == e.class_names[int(np.argmax(e.scores))] and e.confidence == pytest.approx(max(e.scores))
    assert len(e.landmarks) == 10 and e.detection_score >= 0.9 and e.face_id > 0 and e.track_age >= 1


def test_face_free_frame_gives_an_empty_array(rig):
    out = rig.send(rig.image(make_scene([], rng=2).frame))
    assert out.emotions == []


def test_three_faces_get_distinct_ids_that_stay_stable(rig, faces):
    scene = make_scene(faces[400:403], face_size=(90, 140), rng=3)
    seen = []
    for _ in range(4):
        out = rig.send(rig.image(scene.frame))
        assert len(out.emotions) == 3
        by_face = {}
        for e in out.emotions:
            roi = (e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height)
            by_face[max(range(3), key=lambda i: iou(roi, scene.boxes[i]))] = e.face_id
        assert len(set(by_face.values())) == 3
        seen.append(by_face)
    assert all(s == seen[0] for s in seen)
    assert sorted(e.track_age for e in out.emotions)[0] >= 4


def test_node_scores_equal_the_offline_evaluator(rig, faces):
    """raw_scores from the node == model_io.load_model + preprocess.faces_to_batch on the ROI it reports, levelled
    by the eye landmarks it reports (align_faces, the default)."""
    model, meta = model_io.load_model(None, "cpu")
    by_class = {}
    for face in faces:
        by_class.setdefault(face.label, face)
    node_scores, crops = [], []
    for k, face in enumerate(by_class.values()):
        scene = make_scene([face], face_size=(90, 140), rng=30 + k)
        e = rig.send(rig.image(scene.frame)).emotions[0]
        assert e.roi.width == e.roi.height  # square, not clipped by the frame border
        box = (e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height)
        assert rig.node.get_parameter("align_faces").value and len(e.landmarks) == 10
        crops.append(level_crop(scene.frame, box, np.reshape(e.landmarks, (5, 2))))
        node_scores.append(list(e.raw_scores))
    with torch.inference_mode():
        tempered = torch.log_softmax(model(faces_to_batch(crops, meta)) / meta.temperature, 1).numpy()
    strength = rig.node.get_parameter("prior_correction").value
    assert strength > 0  # the shipped operating point is not the trained prior, so the correction is exercised
    offline = adjust_log_probs(tempered, meta.class_prior, strength)
    np.testing.assert_allclose(np.array(node_scores), offline, atol=1e-4)
    assert (np.argmax(node_scores, 1) == offline.argmax(1)).all()


def test_heatmaps_are_computed_only_while_subscribed(rig, faces):
    from sensor_msgs.msg import Image

    scene = make_scene([faces[50]], rng=4)
    before = rig.node.stats.heatmaps
    for _ in range(3):
        rig.send(rig.image(scene.frame))
    time.sleep(0.6)
    assert rig.node.stats.heatmaps == before  # nobody listens: no Grad-CAM work at all

    heatmaps, annotated = [], []
    sub = rig.peer.create_subscription(Image, "/emotion/heatmap", heatmaps.append, 5)
    sub2 = rig.peer.create_subscription(Image, "/emotion/annotated", annotated.append, 5)
    assert rig.spin(lambda: rig.node.heatmap_pub.get_subscription_count() > 0
                    and rig.node.annotated_pub.get_subscription_count() > 0, 10)
    msg = rig.image(scene.frame)
    rig.send(msg)
    assert rig.spin(lambda: heatmaps and annotated, 10)
    heat = heatmaps[-1]
    assert heat.header.stamp.sec == msg.header.stamp.sec and (heat.width, heat.height) == (640, 480)
    pixels = np.frombuffer(heat.data, np.uint8).reshape(480, 640, 3)
    x, y, w, h = scene.boxes[0]
    assert np.abs(pixels[y:y + h, x:x + w].astype(int) - scene.frame[y:y + h, x:x + w]).mean() > 10
    assert np.array_equal(pixels[:, :max(0, x - 20)], scene.frame[:, :max(0, x - 20)])  # only faces change
    assert annotated[-1].header.stamp.sec == msg.header.stamp.sec

    rig.peer.destroy_subscription(sub)
    rig.peer.destroy_subscription(sub2)
    assert rig.spin(lambda: rig.node.heatmap_pub.get_subscription_count() == 0, 10)
    time.sleep(0.6)
    count = rig.node.stats.heatmaps
    for _ in range(3):
        rig.send(rig.image(scene.frame))
    time.sleep(0.6)
    assert rig.node.stats.heatmaps == count


def test_heatmap_rate_is_limited_and_can_be_switched_off(rig, faces):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    heatmaps = []
    sub = rig.peer.create_subscription(Image, "/emotion/heatmap", heatmaps.append, 5)
    try:
        assert rig.spin(lambda: rig.node.heatmap_pub.get_subscription_count() > 0, 10)
        assert rig.node.set_parameters([Parameter("heatmap_rate_hz", value=1.0)])[0].successful
        scene = make_scene([faces[55]], rng=17)
        rig.spin(lambda: False, 1.2)  # let any earlier heatmap's rate-limit window pass
        heatmaps.clear()
        start = time.monotonic()
        while time.monotonic() - start < 1.5:  # frames as fast as the node answers, for 1.5 s
            rig.send(rig.image(scene.frame))
        rig.spin(lambda: False, 0.3)
        assert 1 <= len(heatmaps) <= 2, len(heatmaps)  # at 1 Hz: one at once, at most one more in 1.5 s
        assert rig.node.set_parameters([Parameter("publish_heatmap", value=False)])[0].successful
        rig.spin(lambda: False, 1.2)
        count = rig.node.stats.heatmaps
        for _ in range(3):
            rig.send(rig.image(scene.frame))
        rig.spin(lambda: False, 1.2)
        assert rig.node.stats.heatmaps == count
    finally:
        rig.node.set_parameters([Parameter("heatmap_rate_hz", value=2.0), Parameter("publish_heatmap", value=True)])
        rig.peer.destroy_subscription(sub)


def _bad_messages():
    from sensor_msgs.msg import Image

    good = np.zeros((48, 64, 3), np.uint8)

    def base(**fields):
        msg = Image(height=48, width=64, encoding="bgr8", step=192)
        msg.data = good.tobytes()
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg

    return {
        "truncated": (base(data=good.tobytes()[:1000]), "truncated data"),
        "step lies": (base(step=100), "step 100 is shorter"),
        "depth encoding": (base(encoding="32FC1", step=256, data=bytes(48 * 256)), "unsupported encoding '32FC1'"),
        "unknown encoding": (base(encoding="hsv8"), "unsupported encoding 'hsv8'"),
        "empty": (base(height=0, width=0, step=0, data=b""), "empty image"),
        "huge": (base(height=9000, width=9000, step=27000, data=b"\x00" * 10), "exceeds the maximum"),
    }


@pytest.mark.parametrize("case", list(_bad_messages()))
def test_bad_input_is_logged_and_the_next_good_frame_is_processed(rig, faces, case):
    msg, reason = _bad_messages()[case]
    rejected = rig.node.stats.rejected
    rig.pub.publish(rig.stamped(msg))
    assert rig.spin(lambda: rig.node.stats.rejected == rejected + 1, 10)
    assert any(reason in key for key in rig.node._logged), list(rig.node._logged)
    out = rig.send(rig.image(make_scene([faces[60]], rng=5).frame))
    assert len(out.emotions) == 1


def test_diagnostics_reach_error_while_every_frame_fails_and_recover(faces):
    """Every frame rejected used to read 'no frames processed yet' at WARN, as if the camera were merely slow."""
    from diagnostic_msgs.msg import DiagnosticStatus

    # Topics of its own: the module's rig node must not receive (and count) these bad frames.
    topics = {"image_topic": "/diagnostics_test/image", "emotion_topic": "/diagnostics_test/emotion"}
    rig = Rig(topics, emotion_topic=topics["emotion_topic"], image_topic=topics["image_topic"])
    try:
        bad, _ = _bad_messages()["unknown encoding"]
        for _ in range(3):
            rejected = rig.node.stats.rejected
            rig.pub.publish(rig.stamped(bad))
            assert rig.spin(lambda: rig.node.stats.rejected == rejected + 1, 10)
        count = len(rig.diagnostics)
        assert rig.spin(lambda: len(rig.diagnostics) > count, 5)
        status = rig.diagnostics[-1].status[0]
        assert status.level == DiagnosticStatus.ERROR and "every recent frame failed" in status.message
        assert len(rig.send(rig.image(make_scene([faces[61]], rng=5).frame)).emotions) == 1
        count = len(rig.diagnostics)
        assert rig.spin(lambda: len(rig.diagnostics) > count, 5)
        assert rig.diagnostics[-1].status[0].level == DiagnosticStatus.OK
    finally:
        rig.close()


def test_renamed_parameters_are_refused_naming_the_new_name(ros_context, tmp_path):
    from emotion_recognition_ros.ros.emotion_node import EmotionNode

    with pytest.raises(ValueError, match="'input_reliability' is now 'reliability'"):
        EmotionNode(context=ros_context, parameter_overrides={"device": "cpu", "input_reliability": "reliable"})
    params = tmp_path / "old.yaml"
    params.write_text("emotion_node:\n  ros__parameters:\n    input_depth: 3\n")
    with pytest.raises(ValueError, match="'input_depth' is now 'qos_depth'"):
        EmotionNode(context=ros_context, cli_args=["--ros-args", "--params-file", str(params)])


def test_compressed_input_and_corrupt_compressed_images(rig, faces):
    from sensor_msgs.msg import CompressedImage

    scene = make_scene([faces[70]], rng=6)
    ok, jpeg = cv2.imencode(".jpg", scene.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    msg = rig.stamped(CompressedImage(format="jpeg"))
    msg.data = jpeg.tobytes()
    out = rig.send(msg, rig.cpub)
    assert len(out.emotions) == 1
    roi = (out.emotions[0].roi.x_offset, out.emotions[0].roi.y_offset, out.emotions[0].roi.width,
           out.emotions[0].roi.height)
    assert iou(roi, scene.boxes[0]) > 0.7
    rejected = rig.node.stats.rejected
    bad = rig.stamped(CompressedImage(format="jpeg"))
    bad.data = jpeg.tobytes()[:300]
    rig.cpub.publish(bad)
    assert rig.spin(lambda: rig.node.stats.rejected == rejected + 1, 10)
    assert any("corrupt or unknown compressed image" in key for key in rig.node._logged)
    assert len(rig.send(rig.image(scene.frame)).emotions) == 1


def test_stale_frames_are_dropped_not_queued(rig, faces):
    scene = make_scene([faces[80]], rng=7)
    msgs = [rig.image(scene.frame) for _ in range(8)]
    first = len(rig.results)
    for msg in msgs:  # a burst far faster than the node can process
        rig.pub.publish(msg)
    last = msgs[-1].header.stamp.sec
    assert rig.spin(lambda: any(r.header.stamp.sec == last for r in rig.results), 10)
    rig.spin(lambda: False, 0.5)
    answered = [r.header.stamp.sec for r in rig.results[first:]]
    assert answered[-1] == last and len(answered) < len(msgs)  # the newest frame, not a backlog
    assert answered == sorted(answered)


def test_stamp_gaps_count_lost_frames(rig, faces):
    from emotion_recognition_ros.ros.diagnostics import StampGapMonitor

    monitor = StampGapMonitor()
    lost = [monitor.update(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0, 1.1)]
    assert lost == [0, 0, 0, 0, 0, 0, 0, 3, 0] and monitor.lost == 3
    assert monitor.update(0.5) == 0  # stamps going back (a looping bag) restart the estimate


    before = rig.node.stats.lost_upstream
    frame = make_scene([], rng=8).frame
    base = 1  # stamps going back restart the node's estimate, so earlier tests' stamps do not count
    for dt in [0, 1, 2, 3, 4, 5, 6, 12]:  # 1 s period, then 5 missing frames
        msg = rig.image(frame, stamp=base + dt)
        rig.send(msg)
    assert rig.node.stats.lost_upstream - before == 5
    assert rig.node.stats.lost_dds == 0  # in-process delivery loses nothing; the estimate is not a DDS loss


def test_frames_lost_by_dds_are_counted_exactly(faces):
    """Camera and node in two processes: every frame offered is either received or reported lost by DDS."""
    import argparse

    from benchmarks.speed_probe import probe_dds

    report = probe_dds(argparse.Namespace(rate=30.0, seconds=4.0, faces=1, width=640, height=480, device="cpu",
                                          param=["detect_async:=false"], heatmap=False,
                                          domain_id=(int(os.environ["ROS_DOMAIN_ID"]) + 100) % 200 + 1))
    diag = report["node_diagnostics"]
    received, lost = int(diag["frames_received"]), int(diag["frames_lost_dds"])
    assert report["sent"] >= 100 and report["answered"] > 0
    assert report["sent"] - 3 <= received + lost <= report["sent"], (report["sent"], received, lost)


def test_parameters_are_validated_at_run_time(rig, faces):
    from rclpy.parameter import Parameter

    node = rig.node
    results = node.set_parameters([Parameter("detection_threshold", value=1.5)])
    assert not results[0].successful
    results = node.set_parameters([Parameter("device", value="cuda")])
    assert not results[0].successful and "read-only" in results[0].reason
    results = node.set_parameters([Parameter("mtcnn_thresholds", value=[0.6, 0.7])])
    assert not results[0].successful and "three numbers" in results[0].reason
    results = node.set_parameters([Parameter("min_face_size", value=5)])
    assert not results[0].successful

    scene = make_scene([faces[90]], face_size=(100, 100), rng=9)
    assert len(rig.send(rig.image(scene.frame)).emotions) == 1
    assert node.set_parameters([Parameter("min_face_size", value=150)])[0].successful
    assert rig.send(rig.image(scene.frame)).emotions == []
    assert node.set_parameters([Parameter("min_face_size", value=40)])[0].successful
    assert len(rig.send(rig.image(scene.frame)).emotions) == 1


def test_parameter_service_over_dds(rig):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(rig.peer, "emotion_node")
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters([Parameter("smoothing", value=0.25), Parameter("max_faces", value=1000)])
    assert rig.spin(future.done, 10)
    ok, bad = future.result().results
    assert ok.successful and not bad.successful
    assert rig.node.pipeline.config.smoothing == 0.25 and rig.node.pipeline.smoother.smoothing == 0.25
    future = client.get_parameters(["smoothing"])
    assert rig.spin(future.done, 10)
    assert future.result().values[0].double_value == 0.25
    rig.node.set_parameters([Parameter("smoothing", value=0.5)])


def test_diagnostics_report_rate_latency_device_and_model(rig, faces):
    scene = make_scene([faces[95]], rng=10)
    for _ in range(3):
        rig.send(rig.image(scene.frame))
    count = len(rig.diagnostics)
    assert rig.spin(lambda: len(rig.diagnostics) > count, 5)
    status = rig.diagnostics[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["device"] == "cpu" and values["model_id"] == rig.node.pipeline.model_id
    assert float(values["latency_p50_ms"]) > 0 and float(values["latency_p95_ms"]) >= float(values["latency_p50_ms"])
    assert int(values["frames_processed"]) >= 3 and int(values["frames_rejected"]) >= 0 and "fps" in values


def test_parameters_from_a_yaml_file_take_effect(faces, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("emotion_node:\n  ros__parameters:\n    image_topic: /custom/image\n"
                      "    emotion_topic: /custom/emotion\n    max_faces: 1\n    smoothing: 0.0\n")
    rig = Rig(cli_args=["--ros-args", "--params-file", str(params)], emotion_topic="/custom/emotion",
              image_topic="/custom/image")
    try:
        assert rig.node.get_parameter("max_faces").value == 1
        scene = make_scene(faces[500:503], face_size=(90, 140), rng=11)
        out = rig.send(rig.image(scene.frame))
        assert len(out.emotions) == 1
        assert list(out.emotions[0].scores) == list(out.emotions[0].raw_scores)
    finally:
        rig.close()


def test_the_shipped_params_file_is_accepted(faces):
    rig = Rig(cli_args=["--ros-args", "--params-file", str(REPO / "config" / "emotion_node.yaml")])
    try:
        assert rig.node.get_parameter("detector").value == "mtcnn"
        assert len(rig.send(rig.image(make_scene([faces[1]], rng=12).frame)).emotions) == 1
    finally:
        rig.close()


def test_missing_or_corrupt_model_is_a_start_up_error_naming_the_file(tmp_path, ros_context):
    from emotion_recognition_ros.ros.emotion_node import EmotionNode

    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(model_io.ModelLoadError, match="nowhere"):
        EmotionNode(context=ros_context, parameter_overrides={"model": str(missing), "device": "cpu"})
    corrupt = tmp_path / "corrupt"
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "corrupt.json").write_text(model_io.read_metadata(model_io.default_model_path()).to_json())
    with pytest.raises(model_io.ModelLoadError, match=r"corrupt\.safetensors.*not a valid safetensors"):
        EmotionNode(context=ros_context, parameter_overrides={"model": str(corrupt), "device": "cpu"})
    with pytest.raises(ValueError, match="bad device 'gpu'"):
        EmotionNode(context=ros_context, parameter_overrides={"device": "gpu"})
    with pytest.raises(ValueError, match="unknown detector 'haar'"):
        EmotionNode(context=ros_context, parameter_overrides={"detector": "haar"})
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        EmotionNode(context=ros_context, parameter_overrides={"backend": "tensorrt"})
    from rclpy.exceptions import ParameterException

    with pytest.raises(ParameterException, match="smoothing out of range"):
        EmotionNode(context=ros_context, parameter_overrides={"smoothing": 1.5})


def test_console_script_exits_with_a_clear_message_on_a_missing_model(tmp_path):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args", "-p",
                           f"model:={tmp_path / 'absent.safetensors'}"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "cannot start" in proc.stderr and "absent.json: model metadata file not found" in proc.stderr


def _fastdds_shm() -> set[str]:
    return set(glob.glob("/dev/shm/*fastdds*"))


def _fastdds_shm_held(pids=None) -> set[str]:
    """Fast DDS files in /dev/shm that processes `pids` (default: every live process) have open or mapped. Other
    DDS processes on the machine (a parallel test run, a benchmark) create and remove such files at any time, so
    the node is judged by the files it held itself, not by what appeared in /dev/shm meanwhile."""
    held = set()
    for proc in ([Path(f"/proc/{pid}") for pid in pids] if pids is not None else Path("/proc").glob("[0-9]*")):
        try:
            held.update(path for path in (line.split()[-1] for line in (proc / "maps").read_text().splitlines())
                        if path.startswith("/dev/shm/") and "fastdds" in path)  # not libfastdds.so
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("/dev/shm/") and "fastdds" in target:
                    held.add(target)
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return held


def _start_emotion_node(tmp_path: Path, domain_offset: int):
    """emotion_node (CPU, defaults) in its own process group and ROS domain, logging to tmp_path."""
    from emotion_recognition_ros.tools.processes import NodeProcess

    env = dict(os.environ, ROS_DOMAIN_ID=str((int(os.environ["ROS_DOMAIN_ID"]) + domain_offset) % 200 + 1))
    return NodeProcess([sys.executable, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args", "-p",
                        "device:=cpu"], tmp_path / "emotion_node.log", env).start()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="Fast DDS keeps shared memory in /dev/shm on Linux only")
def test_the_node_leaves_no_shared_memory_behind_after_ctrl_c(tmp_path):
    """emotion_node leaves with os._exit (ros/spin.exit_releasing_dds): before it, a garbage collection must
    free Fast DDS's participant, or each run leaves its segment and port files in /dev/shm (it did: 5-8 files a
    run), and later participants given a dead port's number can miss each other."""
    before = _fastdds_shm()
    node = _start_emotion_node(tmp_path, 50)
    try:
        deadline = time.monotonic() + 120
        while "model tf_" not in node.log_tail() and node.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        own = _fastdds_shm_held([node.pid]) - before  # its own segment, port and lock files
        assert node.alive() and own, f"the node did not come up with a participant:\n{node.log_tail()}"
        os.killpg(node.pid, signal.SIGINT)
        assert node.proc.wait(30) == 0, node.log_tail()
    finally:
        node.stop()
    left = (own & _fastdds_shm()) - _fastdds_shm_held()
    assert not left, f"left in /dev/shm (no live process holds them): {sorted(left)}"


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="start-up is seen by Fast DDS's files in /dev/shm (Linux)")
def test_ctrl_c_while_the_node_is_still_starting_is_a_clean_stop(tmp_path):
    """autostart configures and activates inside the constructor (model load, backend imports: seconds on a CPU);
    a Ctrl-C then once escaped as a KeyboardInterrupt traceback with exit status -2."""
    before = _fastdds_shm()
    node = _start_emotion_node(tmp_path, 60)
    try:
        deadline = time.monotonic() + 120
        while not _fastdds_shm_held([node.pid]) - before and node.alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # its participant exists: rclpy is up, the model is loading
        assert node.alive() and "model tf_" not in node.log_tail(), f"not caught starting:\n{node.log_tail()}"
        os.killpg(node.pid, signal.SIGINT)
        assert node.proc.wait(30) == 0, node.log_tail()
    finally:
        node.stop()
    assert "Traceback" not in node.log_tail(), node.log_tail()


def test_async_detection_over_dds(faces):
    """The default mode: first frame detected synchronously, later ones classified on tracked boxes while the
    detector runs in the background; ids stay stable and fresh detections keep arriving."""
    rig = Rig({"detect_async": True})
    try:
        assert rig.node.get_parameter("detect_async").value is True
        scene = make_scene(faces[600:602], face_size=(90, 140), rng=13)
        outs = [rig.send(rig.image(scene.frame)) for _ in range(12)]
        assert all(len(o.emotions) == 2 for o in outs)
        assert {tuple(sorted(e.face_id for e in o.emotions)) for o in outs} == {(1, 2)}
        assert max(e.track_age for e in outs[-1].emotions) == 12
        # CK+ crops are tight around the face (IoU with MTCNN's box > 0.7); the astronaut stand-ins of a clone
        # without ../shared carry hair and background around it (0.69 seen), so they are held to 0.6.
        tight = not missing_reason("ckplus48")
        for e in outs[-1].emotions:
            roi = (e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height)
            assert max(iou(roi, box) for box in scene.boxes) > (0.7 if tight else 0.6)
    finally:
        rig.close()


def test_the_ckplus6_model_is_chosen_by_name_and_its_classes_travel_in_the_message(faces):
    """model:=ckplus6 loads the six-class CK+ model; each face carries that model's six names and scores."""
    rig = Rig({"model": "ckplus6"})
    try:
        meta = model_io.read_metadata(model_io.resolve_model("ckplus6").with_suffix(".json"))
        out = rig.send(rig.image(make_scene([faces[20]], rng=1).frame))
        assert out.model_id == rig.node.pipeline.model_id != ""
        assert rig.node.pipeline.class_names == list(meta.class_names) == list(CKPLUS6)
        e = out.emotions[0]
        assert list(e.class_names) == list(CKPLUS6) and len(e.scores) == len(e.raw_scores) == 6
        assert abs(sum(e.scores) - 1.0) < 1e-4 and e.label == CKPLUS6[int(np.argmax(e.scores))]
    finally:
        rig.close()
