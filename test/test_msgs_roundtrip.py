"""emotion_msgs built by colcon, sent through real rclpy over Fast DDS, arrive intact."""
from __future__ import annotations

import os

import pytest
from conftest import spin_until

rclpy = pytest.importorskip("rclpy")
from emotion_msgs.msg import Emotion, EmotionArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402

CLASSES = ["anger", "disgust", "fear", "happy", "sadness", "surprise"]


def _emotion(i: int) -> Emotion:
    scores = [0.05] * 6
    scores[i % 6] = 0.75
    return Emotion(
        face_id=100 + i, label=CLASSES[i % 6], confidence=0.75, class_names=CLASSES,
        scores=scores, raw_scores=list(reversed(scores)),
        roi=RegionOfInterest(x_offset=10 * i, y_offset=20 * i, width=64 + i, height=70 + i, do_rectify=False),
        detection_score=0.9 + i / 100, landmarks=[float(i), 2.0 * i], track_age=i + 1,
    )


def _array(n_faces: int) -> EmotionArray:
    msg = EmotionArray(emotions=[_emotion(i) for i in range(n_faces)], model_id="tf_efficientnet_lite0@abc")
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 1234, 5678, "camera_optical"
    return msg


def test_emotion_array_roundtrip_over_dds(executor):
    node = rclpy.create_node("roundtrip_test", context=executor.context)
    executor.add_node(node)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received: list[EmotionArray] = []
    node.create_subscription(EmotionArray, "/test/emotion", received.append, qos)
    pub = node.create_publisher(EmotionArray, "/test/emotion", qos)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10)

    sent = _array(4)
    pub.publish(sent)
    assert spin_until(executor, lambda: len(received) > 0, 10), "EmotionArray never arrived"
    got = received[0]
    assert got.header == sent.header and got.model_id == sent.model_id
    assert len(got.emotions) == 4
    for a, b in zip(got.emotions, sent.emotions):
        assert (a.face_id, a.label, list(a.class_names), a.track_age) == (b.face_id, b.label, list(b.class_names), b.track_age)
        assert a.roi == b.roi
        assert list(a.scores) == pytest.approx(list(b.scores))
        assert list(a.raw_scores) == pytest.approx(list(b.raw_scores))
        assert a.confidence == pytest.approx(b.confidence) and a.detection_score == pytest.approx(b.detection_score)
        assert list(a.landmarks) == pytest.approx(list(b.landmarks))


def test_domain_id_isolates_runs(executor):
    """This run's domain is private: a node in another domain on the same topic never hears it."""
    from rclpy.context import Context

    ours = int(os.environ["ROS_DOMAIN_ID"])
    assert ours != 0, "tests must not run in the default domain 0"
    other_ctx = Context()
    rclpy.init(context=other_ctx, domain_id=(ours % 200) + 1)
    try:
        from rclpy.executors import SingleThreadedExecutor

        other_exec = SingleThreadedExecutor(context=other_ctx)
        other = rclpy.create_node("other_domain", context=other_ctx)
        other_exec.add_node(other)
        heard: list[EmotionArray] = []
        other.create_subscription(EmotionArray, "/test/isolation", heard.append, 10)

        node = rclpy.create_node("isolation_pub", context=executor.context)
        executor.add_node(node)
        same_domain: list[EmotionArray] = []
        node.create_subscription(EmotionArray, "/test/isolation", same_domain.append, 10)
        pub = node.create_publisher(EmotionArray, "/test/isolation", 10)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10)
        for _ in range(20):
            pub.publish(_array(1))
            executor.spin_once(timeout_sec=0.05)
            other_exec.spin_once(timeout_sec=0.05)
        assert same_domain, "the same-domain subscriber should hear the messages"
        assert pub.get_subscription_count() == 1 and not heard, "a node in another domain heard this run"
        other_exec.remove_node(other)
        other.destroy_node()
        other_exec.shutdown()
    finally:
        rclpy.shutdown(context=other_ctx)
