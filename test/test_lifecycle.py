"""The emotion node as a managed (lifecycle) node, driven over DDS through its lifecycle services, as
`ros2 lifecycle set` or a lifecycle manager would: unconfigured -> configure -> activate -> deactivate -> cleanup
-> configure -> activate, silent while not active and answering again once reactivated. Frames are the astronaut
photo (any clone has it)."""
from __future__ import annotations

import sys

import pytest

from conftest import spin_until

NODE = "managed_emotion_node"


def astronaut_frame():
    from emotion_recognition_ros.media.sources import SyntheticSource

    return SyntheticSource("astronaut", width=640, height=480).read().image


class Managed:
    def __init__(self, executor, ros_context):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from emotion_msgs.msg import EmotionArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from sensor_msgs.msg import Image

        from emotion_recognition_ros.ros.emotion_node import EmotionNode

        self.executor = executor
        self.node = EmotionNode(NODE, context=ros_context, parameter_overrides={
            "device": "cpu", "detect_async": False, "autostart": False, "publish_heatmap": False,
            "diagnostics_rate_hz": 5.0})
        self.peer = rclpy.create_node("lifecycle_peer", context=ros_context)
        executor.add_node(self.node)
        executor.add_node(self.peer)
        self.answers: list = []
        self.diagnostics: list = []
        self.peer.create_subscription(EmotionArray, "/emotion", self.answers.append, 10)
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.pub = self.peer.create_publisher(Image, "/image_raw", 10)
        self.get_state = self.peer.create_client(GetState, f"/{NODE}/get_state")
        self.change_state = self.peer.create_client(ChangeState, f"/{NODE}/change_state")
        assert spin_until(executor, lambda: self.get_state.service_is_ready() and self.change_state.service_is_ready(),
                          10)
        self.frame = astronaut_frame()
        self.stamp = 0

    def call(self, client, request):
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, 120), "lifecycle service did not answer"
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(self.get_state, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        return self.call(self.change_state, ChangeState.Request(transition=Transition(label=label))).success

    def answered(self, timeout: float) -> bool:
        """Publish frames for up to `timeout` seconds; whether one of them was answered on /emotion."""
        from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

        sent = set()

        def answer_seen() -> bool:
            self.stamp += 1
            msg = bgr_to_image_msg(self.frame)
            msg.header.stamp.sec = self.stamp
            sent.add(self.stamp)
            self.pub.publish(msg)
            spin_until(self.executor, lambda: False, 0.2)
            return any(a.header.stamp.sec in sent for a in self.answers)

        return spin_until(self.executor, answer_seen, timeout)

    def diagnosed_state(self) -> str:
        count = len(self.diagnostics)
        assert spin_until(self.executor, lambda: len(self.diagnostics) > count + 1, 5)
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}["lifecycle_state"]


@pytest.fixture
def managed(executor, ros_context):
    return Managed(executor, ros_context)


def test_a_full_lifecycle_is_silent_while_not_active_and_answers_after_reactivation(managed):
    m = managed
    assert m.state() == "unconfigured" and m.node.pipeline is None and m.diagnosed_state() == "unconfigured"
    assert m.node.count_publishers("/emotion") == 0 and m.pub.get_subscription_count() == 0
    assert not m.answered(1.0)

    assert m.transition("configure") and m.state() == "inactive"
    assert m.node.pipeline is not None and m.diagnosed_state() == "inactive"
    assert m.pub.get_subscription_count() == 0  # inactive: frames are not even delivered
    assert not m.answered(1.5)

    assert m.transition("activate") and m.state() == "active" and m.diagnosed_state() == "active"
    assert m.answered(30.0)

    assert m.transition("deactivate") and m.state() == "inactive"
    assert spin_until(m.executor, lambda: m.pub.get_subscription_count() == 0, 10)
    m.answers.clear()
    assert not m.answered(1.5)

    assert m.transition("cleanup") and m.state() == "unconfigured" and m.node.pipeline is None
    assert m.node.count_publishers("/emotion") == 0

    assert m.transition("configure") and m.transition("activate") and m.state() == "active"
    assert m.answered(30.0)


def test_parameters_set_while_unconfigured_are_used_by_configure(managed):
    from rclpy.parameter import Parameter

    m = managed
    assert m.node.set_parameters([Parameter("smoothing", value=0.2)])[0].successful
    assert m.transition("configure") and m.node.pipeline.config.smoothing == 0.2


def test_shutdown_from_active_frees_everything(managed):
    m = managed
    assert m.transition("configure") and m.transition("activate")
    assert m.transition("shutdown") and m.state() == "finalized"
    assert m.node.pipeline is None and m.node.lifecycle_state == "finalized"


def test_a_missing_model_fails_configure_and_leaves_the_node_unconfigured(executor, ros_context, tmp_path):
    """Only with autostart does a configure failure raise (from the constructor, as the node always did)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from emotion_recognition_ros.core.model_io import ModelLoadError
    from emotion_recognition_ros.ros.emotion_node import EmotionNode

    node = EmotionNode("bad_model_node", context=ros_context, parameter_overrides={
        "device": "cpu", "autostart": False, "model": str(tmp_path / "absent.safetensors")})
    executor.add_node(node)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node.lifecycle_state == "unconfigured" and node.pipeline is None
    assert isinstance(node.configure_error, ModelLoadError) and "absent" in str(node.configure_error)


def test_ros4hri_without_hri_msgs_is_refused_naming_the_apt_package(ros_context, monkeypatch):
    """Without hri_msgs the node refuses ros4hri:=true in one line naming the package (where hri_msgs is built,
    its import is made to fail as it does in a clone without it)."""
    from emotion_recognition_ros.ros.emotion_node import EmotionNode

    monkeypatch.setitem(sys.modules, "hri_msgs.msg", None)
    with pytest.raises(ValueError, match=r"hri_msgs package is not installed.*ros-\$ROS_DISTRO-hri-msgs"):
        EmotionNode(context=ros_context, parameter_overrides={"device": "cpu", "ros4hri": True})
