"""bag_recorder: real DDS traffic into sqlite3 and MCAP bags that carry their message definitions."""
from __future__ import annotations

import pytest

from conftest import spin_until


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_records_images_and_emotions_with_definitions(ros_context, executor, tmp_path, storage):
    from emotion_msgs.msg import Emotion, EmotionArray
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import Image

    from emotion_recognition_ros.tools.bag_recorder import BagRecorder
    from emotion_recognition_ros.ros.image_source_node import ImageSourceNode

    bag = tmp_path / "session"
    recorder = BagRecorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(bag)), Parameter("storage", value=storage),
        Parameter("topics", value=["/image_raw", "/emotion", "/unused"]),
        Parameter("discovery_period", value=0.1)])
    source = ImageSourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="astronaut"), Parameter("rate", value=20.0), Parameter("max_frames", value=10),
        Parameter("width", value=320), Parameter("height", value=240),
        Parameter("wait_for_subscribers", value=2)])
    # A best-effort publisher of results, answering each frame: the recorder must match its QoS.
    responder = Node("responder", context=ros_context)
    publisher = responder.create_publisher(EmotionArray, "/emotion", qos_profile_sensor_data)

    def answer(image: Image) -> None:
        emotion = Emotion(face_id=7, label="happy", confidence=0.8, class_names=["happy", "sadness"],
                          scores=[0.8, 0.2])
        publisher.publish(EmotionArray(header=image.header, emotions=[emotion], model_id="m@1"))

    responder.create_subscription(Image, "/image_raw", answer, qos_profile_sensor_data)
    for node in (recorder, source, responder):
        executor.add_node(node)
    # The camera waits for two subscribers (responder + recorder), so no frame is published unseen.
    assert spin_until(executor, lambda: source.done and recorder.counts.get("/emotion", 0) >= 10, timeout=20)
    assert set(recorder.missing_peers()) == {"/unused"}
    # A camera that sent its frames and left is not a missing peer (only what never delivered is).
    executor.remove_node(source)
    source.destroy_node()
    image_sub = recorder._topic_subscriptions["/image_raw"]
    assert spin_until(executor, lambda: image_sub.get_publisher_count() == 0, timeout=10)
    assert set(recorder.missing_peers()) == {"/unused"}
    assert recorder.missing_peers()["/unused"].startswith("/unused: 0 of 1 publisher(s) matched")
    assert recorder.close() == bag
    assert recorder.counts["/image_raw"] == 10
    # Asked for, never published: said at close, with the reason.
    assert set(recorder.missing_topics()) == {"/unused"}
    assert "no publisher" in recorder.missing_topics()["/unused"]
    assert "/camera_info" not in recorder.counts  # not asked for

    # No default typestore: everything must come from the definitions stored in the bag.
    with AnyReader([bag]) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert set(topics) == {"/image_raw", "/emotion"}
        assert topics["/emotion"].msgtype == "emotion_msgs/msg/EmotionArray"
        assert "Emotion[] emotions" in topics["/emotion"].msgdef.data
        assert "MSG: emotion_msgs/Emotion" in topics["/emotion"].msgdef.data
        frames, results = {}, []
        for connection, recv_ns, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            assert recv_ns >= stamp  # stamped on receipt, after the camera stamped the frame
            if connection.topic == "/image_raw":
                frames[stamp] = (msg.width, msg.height, msg.encoding)
            else:
                results.append((stamp, msg.emotions[0].label, msg.emotions[0].face_id, msg.model_id))
    assert len(frames) == 10 and set(frames.values()) == {(320, 240, "bgr8")}
    assert sorted(s for s, *_ in results) == sorted(frames)
    assert {r[1:] for r in results} == {("happy", 7, "m@1")}


def test_zstd_bag_reads_back(ros_context, executor, tmp_path):
    from rclpy.parameter import Parameter

    from emotion_recognition_ros.tools.bag_io import read_messages, summarize
    from emotion_recognition_ros.tools.bag_recorder import BagRecorder
    from emotion_recognition_ros.ros.image_source_node import ImageSourceNode

    bag = tmp_path / "small"
    recorder = BagRecorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(bag)), Parameter("compression", value="zstd"),
        Parameter("discovery_period", value=0.1)])
    source = ImageSourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="astronaut"), Parameter("rate", value=30.0), Parameter("max_frames", value=5),
        Parameter("wait_for_subscribers", value=1)])
    executor.add_node(recorder)
    executor.add_node(source)
    assert spin_until(executor, lambda: recorder.counts.get("/image_raw", 0) == 5, timeout=20)
    recorder.close()
    summary = summarize(bag)
    assert summary.topics["/image_raw"] == ("sensor_msgs/msg/Image", 5) and summary.has_definitions
    images = [m.msg for m in read_messages(bag, ["/image_raw"])]
    assert len(images) == 5 and images[0].width == 640 and len(images[0].data) == 640 * 480 * 3
    raw_size = 5 * 640 * 480 * 3
    assert sum(p.stat().st_size for p in bag.iterdir()) < raw_size  # compression did something


def test_cli_flags_and_bad_input(tmp_path, capsys):
    from emotion_recognition_ros.tools.bag_recorder import main, ros_arguments

    assert ros_arguments(["-o", "x", "-s", "sqlite3", "/a", "/b"]) == [
        "--ros-args", "-p", "topics:=['/a','/b']", "-p", "output:=x", "-p", "storage:=sqlite3"]
    assert ros_arguments(["--ros-args", "-p", "storage:=mcap"]) == ["--ros-args", "-p", "storage:=mcap"]
    (tmp_path / "taken").mkdir()
    for argv, problem in (([ "-o", str(tmp_path / "taken")], "already exists"),
                          (["--ros-args", "-p", "storage:=tape"], "storage must be one of mcap, sqlite3")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("bag_recorder: ") and problem in err, err


def test_cli_process_finishes_the_bag_on_ctrl_c(ros_context, executor, tmp_path):
    """The console script in its own process, stopped like a user stops it: the bag must be complete."""
    import signal
    import subprocess
    import sys
    import time

    from rclpy.parameter import Parameter

    from emotion_recognition_ros.tools.bag_io import summarize
    from emotion_recognition_ros.ros.image_source_node import ImageSourceNode

    bag = tmp_path / "cli_bag"
    proc = subprocess.Popen([sys.executable, "-m", "emotion_recognition_ros.tools.bag_recorder", "-o", str(bag),
                             "-s", "sqlite3", "/image_raw"], stderr=subprocess.PIPE, text=True)
    try:
        source = ImageSourceNode(context=ros_context, parameter_overrides=[
            Parameter("source", value="astronaut"), Parameter("rate", value=20.0), Parameter("max_frames", value=6),
            Parameter("width", value=160), Parameter("height", value=120), Parameter("wait_for_subscribers", value=1)])
        executor.add_node(source)
        assert spin_until(executor, lambda: source.done, timeout=30)
        time.sleep(0.5)  # the last frame in flight
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "closed" in err
    assert summarize(bag).topics == {"/image_raw": ("sensor_msgs/msg/Image", 6)}
