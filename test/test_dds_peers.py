"""DDS peers (issue 28): a missing peer is named within seconds, with the likely cause; every start of the demo's
processes matches; the node's diagnostics warn when no input arrives. All over real rclpy and Fast DDS."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import spin_until

STARTS = 20  # fresh node + camera starts (issue 28 asks for 20): 7-20 s each on the loaded 2-core machine
FRAMES = 5  # frames the watcher must receive in each start
# The node's model load and every match of one start: a healthy start took 7-20 s on the loaded 2-core machine
# (a stalled one never ends), so 60 s is a bound on a stall, not on a slow machine.
START_BOUND_S = 60.0
STOP_BOUND_S = 10.0  # SIGINT to exit; the nodes' own teardown deadlines are shorter
MAX_FAILURES = 2  # then stop: a run that stalls still ends inside the test's timeout


def test_the_diagnosis_names_each_cause(executor):
    """No peer at all, a peer on another topic, a peer with incompatible QoS, and fewer peers than wanted (all
    matched) each get their own reason."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from emotion_recognition_ros.ros.peers import diagnose

    context = executor.context
    camera = rclpy.create_node("peer_camera", context=context)
    executor.add_node(camera)
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = camera.create_publisher(Image, "peer_image", best_effort)
    alone = diagnose(camera, "peer_image", "subscriber", 1, pub.get_subscription_count(), pub.qos_profile)
    assert alone.startswith("/peer_image: 0 of 1 subscriber(s) matched")
    assert "no other node discovered at all" in alone and f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}" in alone

    other = rclpy.create_node("peer_other", context=context)
    executor.add_node(other)
    other.create_subscription(String, "elsewhere", lambda _m: None, 1)
    assert spin_until(executor, lambda: "/peer_other" in [
        f"{ns.rstrip('/')}/{n}" for n, ns in camera.get_node_names_and_namespaces()], timeout=10)
    renamed = diagnose(camera, "peer_image", "subscriber", 1, 0, pub.qos_profile)
    assert "other nodes are up (/peer_other)" in renamed and "topic name and namespace" in renamed

    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    other.create_subscription(Image, "peer_image", lambda _m: None, reliable)
    assert spin_until(executor, lambda: camera.get_subscriptions_info_by_topic("/peer_image"), timeout=10)
    qos = diagnose(camera, "peer_image", "subscriber", 1, pub.get_subscription_count(), pub.qos_profile)
    assert "discovered peer_other but the QoS is incompatible" in qos and "best-effort publisher" in qos

    info_pub = camera.create_publisher(Image, "peer_info", best_effort)
    other.create_subscription(Image, "peer_info", lambda _m: None, best_effort)
    assert spin_until(executor, lambda: info_pub.get_subscription_count() == 1, timeout=10)
    short = diagnose(camera, "peer_info", "subscriber", 2, info_pub.get_subscription_count(), info_pub.qos_profile)
    assert short.startswith("/peer_info: 1 of 2 subscriber(s) matched") and "only peer_other on it so far" in short
    assert "the missing subscriber is not running" in short, short


def test_a_camera_in_another_domain_says_so_within_seconds(tmp_path, executor):
    """The camera started on purpose in another ROS_DOMAIN_ID: its log names the topic, the missing side and the
    cause within DIAGNOSE_AFTER_S (+ start-up), not after a demo's 200 s."""
    import rclpy
    from sensor_msgs.msg import Image

    from emotion_recognition_ros.ros.peers import DIAGNOSE_AFTER_S
    from emotion_recognition_ros.tools.processes import NodeProcess

    node = rclpy.create_node("waiting_subscriber", context=executor.context)
    executor.add_node(node)
    node.create_subscription(Image, "image_raw", lambda _m: None, 1)
    other_domain = str((int(os.environ["ROS_DOMAIN_ID"]) + 101) % 230)
    env = {**os.environ, "ROS_DOMAIN_ID": other_domain}
    camera = NodeProcess([sys.executable, "-m", "emotion_recognition_ros.ros.image_source_node", "--ros-args",
                          "-p", "max_frames:=3", "-p", "wait_for_subscribers:=1"], tmp_path / "camera.log", env=env)
    with camera:
        started = time.monotonic()
        assert spin_until(executor, lambda: "missing peer" in camera.log_tail(), timeout=DIAGNOSE_AFTER_S + 25), \
            camera.log_tail()
        took = time.monotonic() - started
        line = next(ln for ln in camera.log_tail().splitlines() if "missing peer" in ln)
    assert re.search(r"missing peer: /image_raw: 0 of 1 subscriber\(s\) matched after 5 s; no other node", line), line
    assert f"ROS_DOMAIN_ID={other_domain}" in line and "transports:" in line, line
    assert took < DIAGNOSE_AFTER_S + 25


def test_diagnostics_warn_after_10_s_without_input():
    from emotion_recognition_ros.ros.diagnostics import NO_INPUT_WARN_S, WARN, NodeStats

    stats = NodeStats()
    stats.expect_input()
    assert stats.health() == (WARN, "no frames processed yet")  # just activated: not a fault yet
    stats._input_clock -= NO_INPUT_WARN_S + 1  # activated 11 s ago, nothing came
    level, message = stats.health()
    assert level == WARN and message.startswith("no input frame yet for 11 s: is the camera running"), message
    stats.count("received")
    stats.frame_done(0.01, 1, {})
    assert stats.health()[1] == "ok"
    stats._input_clock -= NO_INPUT_WARN_S + 1  # frames came, then stopped
    assert stats.health()[1].startswith("no input frame for 11 s")


def _stop_by_sigint(process, bound: float) -> float | None:
    """SIGINT to the process group; the seconds it took to exit, or None if it did not within `bound` (then it is
    stopped harder, so nothing is left behind)."""
    started = time.monotonic()
    try:
        if process.alive():
            os.killpg(process.pid, signal.SIGINT)
            process.proc.wait(bound)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        return None
    finally:
        process.stop()


@pytest.mark.timeout(600)
def test_every_start_of_camera_and_node_matches(tmp_path, executor):
    """STARTS times: a fresh emotion node and a fresh camera, each in its own process, started together (as
    `ros2 launch` does). Every start must match within START_BOUND_S: the camera holds its frames until the node
    and this test's watcher subscribe to image_raw and the watcher to camera_info, then streams at 20 fps; the
    watcher must receive FRAMES frames and camera info (camera -> watcher), and an answer of the node (camera ->
    node -> watcher). Every stop must return on SIGINT within STOP_BOUND_S. The stall of issue 28 (an endpoint
    that never matched) fails here with the camera's own diagnosis. No sleeps: every wait ends as soon as what
    it waits for is there. (The camera streams until then rather than sending FRAMES frames and exiting: a
    best-effort reader's own side of a match can complete a moment after the writer's, and a node that has just
    started drops frames that come before it, which is no stall: one start in 20 lost all of 5 frames that way
    on the loaded 2-core machine, 2026-12-06.)"""
    import rclpy
    from emotion_msgs.msg import EmotionArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from emotion_recognition_ros.tools.processes import NodeProcess

    watcher = rclpy.create_node("stress_watcher", context=executor.context)
    executor.add_node(watcher)
    got = {"image": 0, "info": 0, "emotion": 0}

    def counter(key: str):
        return lambda _msg: got.__setitem__(key, got[key] + 1)

    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # as the camera offers, as a recorder
    watcher.create_subscription(Image, "/image_raw", counter("image"), reliable)
    watcher.create_subscription(CameraInfo, "/camera_info", counter("info"), reliable)
    answers = watcher.create_subscription(EmotionArray, "/emotion", counter("emotion"), qos_profile_sensor_data)
    py = sys.executable
    failures, took = [], []
    for start in range(STARTS):
        logs = tmp_path / f"start{start}"
        got.update(image=0, info=0, emotion=0)
        node = NodeProcess([py, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args", "-p", "device:=cpu"],
                           logs / "emotion_node.log")
        camera = NodeProcess([py, "-m", "emotion_recognition_ros.ros.image_source_node", "--ros-args",
                              "-p", f"max_frames:={int(START_BOUND_S * 20)}", "-p", "rate:=20.0",
                              "-p", "wait_for_subscribers:=2", "-p", "wait_for_info_subscribers:=1"],
                             logs / "camera.log")
        began = time.monotonic()
        node.start()
        camera.start()
        try:
            matched = spin_until(executor, lambda: (got["image"] >= FRAMES and got["info"] and got["emotion"])
                                 or not camera.alive() or node.failed(), START_BOUND_S) \
                and camera.alive() and not node.failed()
            took.append(round(time.monotonic() - began, 1))
            node_to_watcher = answers.get_publisher_count()
        finally:
            camera_stop = _stop_by_sigint(camera, STOP_BOUND_S)
            node_stop = _stop_by_sigint(node, STOP_BOUND_S)
        if not (matched and camera_stop is not None and node_stop is not None):
            said = [ln.strip() for ln in camera.log_tail(50).splitlines() if "missing peer" in ln]
            failures.append(f"start {start}: matched {matched} after {took[-1]} s: watcher got {got}, the node's "
                            f"/emotion matched the watcher {node_to_watcher}; stops: camera {camera_stop} s, node "
                            f"{node_stop} s (None: not by SIGINT within {STOP_BOUND_S:g} s); camera exit "
                            f"{camera.proc.returncode}, node exit {node.proc.returncode}; {said}; "
                            f"node: {node.last_line()}")
            if len(failures) >= MAX_FAILURES:
                break
    assert not failures, f"{len(failures)} of {len(took)} starts failed (s to match: {took}):\n" + \
        "\n".join(failures)
