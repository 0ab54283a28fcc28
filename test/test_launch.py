"""The real launch files through the real launch system: `ros2 launch` (a LaunchService) as a user runs it.

Each test starts `ros2 launch emotion_recognition_ros ...` in its own process group, talks to what it started
over DDS (parameters read back through the node's get_parameters service, topics from the ROS graph, frames
answered on /emotion), then sends SIGINT to the launch process alone and checks that every process it had
started is gone. Skipped, with the reason, where `ros2 launch` or launch_ros is not installed (no system
ROS 2 sourced and no ../shared/ros2-tools at `make setup`).
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import spin_until

PACKAGE = "emotion_recognition_ros"
START_TIMEOUT = 120.0  # model load + ONNX export on a busy 2-core machine
STOP_TIMEOUT = 30.0
# Every node's infrastructure topics: absolute by ROS 2 design, they never move with a namespace.
GLOBAL_TOPICS = {"/rosout", "/parameter_events"}


def _launch_unavailable() -> str | None:
    if shutil.which("ros2") is None:
        return "no `ros2` command (no system ROS 2 sourced, and no ../shared/ros2-tools at make setup)"
    for module in ("launch", "launch_ros", "ros2launch", "composition_interfaces", "psutil"):
        if importlib.util.find_spec(module) is None:
            return f"ros2 launch unavailable: Python module {module} not installed (ros2-tools or a system ROS 2)"
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        return f"{PACKAGE} is not in the ament index (run make setup: it builds the package with colcon)"
    return None


pytestmark = pytest.mark.skipif(bool(_launch_unavailable()), reason=_launch_unavailable() or "")

# Domains 201..232 (232 is Fast DDS's maximum), above the 1..200 that conftest gives whole test runs: each
# launch test gets one of its own, so a node that an earlier test (of any file) left behind in the run's
# domain, perhaps also called /emotion_node, can never answer for the node this test launched.
_LAUNCH_DOMAINS = itertools.count(os.getpid() % 32)


@pytest.fixture(autouse=True)
def private_domain(monkeypatch) -> int:
    """This test's own ROS domain, for its probe node and (inherited) everything it starts."""
    domain = 201 + next(_LAUNCH_DOMAINS) % 32
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return domain


class Launch:
    """`ros2 launch PACKAGE FILE ARGS...` as a subprocess with its own log, temp and ROS log folders."""

    def __init__(self, tmp: Path, launch_file: str, *args: str):
        import psutil

        self.log_path = tmp / f"{launch_file}.log"
        env = dict(os.environ, TMPDIR=str(tmp), ROS_LOG_DIR=str(tmp / "ros_log"), PYTHONUNBUFFERED="1")
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(["ros2", "launch", PACKAGE, launch_file, *args], env=env, cwd=tmp,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._psutil = psutil
        self.seen: dict[int, "psutil.Process"] = {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def remember_children(self) -> list:
        """The launch's descendants now (called while it runs, so SIGINT's effect on each can be checked)."""
        try:
            for child in self._psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except self._psutil.NoSuchProcess:
            pass
        return list(self.seen.values())

    def interrupt(self) -> int:
        """SIGINT to the launch process only, as `kill -INT`; its exit code once it and its children ended."""
        self.remember_children()
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        finally:
            self._log.close()

    def left_behind(self) -> list[str]:
        deadline = time.monotonic() + 5.0
        while True:
            alive = [p for p in self.seen.values() if p.is_running() and p.status() != self._psutil.STATUS_ZOMBIE]
            if not alive or time.monotonic() > deadline:
                return [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in alive]
            time.sleep(0.2)

    def kill(self) -> None:
        """Teardown for a failed test: nothing of this launch may outlive it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for child in self.seen.values():
            if child.is_running():
                child.kill()
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def launches(tmp_path):
    started: list[Launch] = []

    def start(launch_file: str, *args: str) -> Launch:
        launch = Launch(tmp_path, launch_file, *args)
        started.append(launch)
        return launch

    yield start
    for launch in started:
        launch.kill()


@pytest.fixture
def graph(ros_context, executor):
    import rclpy

    node = rclpy.create_node("launch_test_probe", context=ros_context)
    executor.add_node(node)
    return node


def wait_for_node(executor, graph, launch: Launch, name: str, namespace: str, topic: str) -> None:
    """Until node `namespace/name` exists and has created `topic` (its last publisher), or the launch died."""
    def ready():
        if launch.proc.poll() is not None:
            return True
        if (name, namespace) not in graph.get_node_names_and_namespaces():
            return False
        return topic in {t for t, _ in graph.get_publisher_names_and_types_by_node(name, namespace)}

    assert spin_until(executor, ready, START_TIMEOUT), f"{namespace}/{name} not up:\n{launch.log()[-3000:]}"
    assert launch.proc.poll() is None, f"ros2 launch exited {launch.proc.returncode}:\n{launch.log()[-3000:]}"
    namesakes = graph.get_node_names_and_namespaces().count((name, namespace))
    assert namesakes == 1, f"{namesakes} nodes named {namespace}/{name} in this test's own domain"
    launch.remember_children()


def node_topics(graph, name: str, namespace: str) -> set[str]:
    published = graph.get_publisher_names_and_types_by_node(name, namespace)
    subscribed = graph.get_subscriber_names_and_types_by_node(name, namespace)
    return {t for t, _ in published + subscribed}


def get_parameters(executor, graph, node: str, names: list[str]) -> dict:
    """Parameter values as the running node reports them (its get_parameters service)."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = graph.create_client(GetParameters, f"{node}/get_parameters")
    assert spin_until(executor, client.service_is_ready, 30), f"{node}/get_parameters never appeared"
    future = client.call_async(GetParameters.Request(names=names))
    assert spin_until(executor, future.done, 30), f"{node}/get_parameters did not answer"
    graph.destroy_client(client)
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}


def answers_frames(executor, graph, image_topic: str, emotion_topic: str, timeout: float = 60.0) -> list:
    """Publish a real photo (scikit-image's astronaut: one face) on image_topic until emotion_topic answers a
    frame by its stamp; returns the answers."""
    from emotion_msgs.msg import EmotionArray
    from sensor_msgs.msg import Image

    from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg
    from emotion_recognition_ros.media.sources import SyntheticSource

    frame = SyntheticSource("astronaut", width=640, height=480).read().image
    answers: list = []
    sent: set[tuple[int, int]] = set()
    sub = graph.create_subscription(EmotionArray, emotion_topic, answers.append, 10)
    pub = graph.create_publisher(Image, image_topic, 10)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not any((a.header.stamp.sec, a.header.stamp.nanosec) in sent
                                                      for a in answers):
            msg = bgr_to_image_msg(frame)
            msg.header.stamp = graph.get_clock().now().to_msg()
            sent.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
            pub.publish(msg)
            spin_until(executor, lambda: False, 0.3)
    finally:
        graph.destroy_subscription(sub)
        graph.destroy_publisher(pub)
    return [a for a in answers if (a.header.stamp.sec, a.header.stamp.nanosec) in sent]


class Camera:
    """`image_source` in a process of its own, as a user's camera driver runs beside the node: the astronaut photo
    (one face) at 5 fps on `image_topic`, 640 px wide."""

    def __init__(self, tmp: Path, image_topic: str):
        env = dict(os.environ, ROS_LOG_DIR=str(tmp / "ros_log"), PYTHONUNBUFFERED="1")
        self.log_path = tmp / "image_source.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                ["image_source", "--ros-args", "-p", "source:=astronaut", "-p", "rate:=5.0", "-p", "width:=640",
                 "-r", f"image_raw:={image_topic}"], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def camera(tmp_path):
    started: list[Camera] = []

    def start(image_topic: str) -> Camera:
        started.append(Camera(tmp_path, image_topic))
        return started[-1]

    yield start
    for cam in started:
        cam.stop()


def answers_camera(executor, graph, camera: Camera, emotion_topic: str, timeout: float = 60.0) -> list:
    """Answers on emotion_topic to the camera's frames (the first few, once one has a face)."""
    from emotion_msgs.msg import EmotionArray

    answers: list = []
    sub = graph.create_subscription(EmotionArray, emotion_topic, answers.append, 10)
    try:
        spin_until(executor, lambda: any(a.emotions for a in answers) or camera.proc.poll() is not None, timeout)
    finally:
        graph.destroy_subscription(sub)
    assert camera.proc.poll() is None, f"image_source exited {camera.proc.returncode}:\n" \
                                       f"{camera.log_path.read_text(errors='replace')[-3000:]}"
    return answers


def stop_cleanly(launch: Launch) -> None:
    rc = launch.interrupt()
    assert launch.seen, "the launch had started no process"
    left = launch.left_behind()
    assert not left, f"still running after SIGINT: {left}"
    assert rc == 0, f"ros2 launch exited {rc} after SIGINT:\n{launch.log()[-3000:]}"
    assert "process has died" not in launch.log(), launch.log()[-3000:]
    # Every process ended on the first SIGINT: launch did not have to escalate to SIGTERM or SIGKILL.
    assert "escalating to" not in launch.log(), launch.log()[-3000:]


@pytest.fixture
def ros2_daemon():
    """A ros2 daemon in this test's domain, as most users have one running (`ros2 topic`, `ros2 param` start
    it): Fast DDS's teardown once hung on its TCP connections."""
    subprocess.run(["ros2", "daemon", "start"], check=True, capture_output=True, timeout=60)
    yield
    subprocess.run(["ros2", "daemon", "stop"], capture_output=True, timeout=60)


def write_params(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


MY_YAML = {"image_topic": "/my_cam/image_raw", "device": "cpu", "publish_heatmap": False, "max_faces": 3,
           "smoothing": 0.0}


def test_params_file_is_honoured(launches, camera, executor, graph, tmp_path):
    params = write_params(tmp_path / "my.yaml", **MY_YAML)
    launch = launches("emotion_recognition.launch.py", f"params_file:={params}")
    wait_for_node(executor, graph, launch, "emotion_node", "/", "/diagnostics")
    values = get_parameters(executor, graph, "/emotion_node", list(MY_YAML))
    assert values == MY_YAML
    topics = node_topics(graph, "emotion_node", "/")
    assert "/my_cam/image_raw" in topics and "/image_raw" not in topics
    answers = answers_camera(executor, graph, camera("/my_cam/image_raw"), "/emotion")
    assert answers, f"no answer on /emotion to frames on /my_cam/image_raw:\n{launch.log()[-3000:]}"
    assert any(len(a.emotions) == 1 for a in answers), "the astronaut's face was not found"
    stop_cleanly(launch)


def test_arguments_override_only_when_given_and_namespace_moves_every_topic(launches, executor, graph, tmp_path):
    params = write_params(tmp_path / "my.yaml", **MY_YAML)
    launch = launches("emotion_recognition.launch.py", f"params_file:={params}", "namespace:=robot1",
                      "camera_topic:=cam2/image_raw", "heatmaps:=true")
    wait_for_node(executor, graph, launch, "emotion_node", "/robot1", "/robot1/diagnostics")
    values = get_parameters(executor, graph, "/robot1/emotion_node", list(MY_YAML))
    # Given: camera_topic and heatmaps win over the YAML. Not given: device, max_faces stay the YAML's.
    assert values == {**MY_YAML, "image_topic": "cam2/image_raw", "publish_heatmap": True}
    topics = node_topics(graph, "emotion_node", "/robot1")
    moved = topics - GLOBAL_TOPICS
    assert moved >= {"/robot1/cam2/image_raw", "/robot1/emotion", "/robot1/emotion/heatmap",
                     "/robot1/emotion/annotated", "/robot1/diagnostics"}
    assert all(t.startswith("/robot1/") for t in moved), sorted(moved)
    assert answers_frames(executor, graph, "/robot1/cam2/image_raw", "/robot1/emotion")
    stop_cleanly(launch)


def test_bad_override_is_refused_with_its_name(launches, executor, graph):
    launch = launches("emotion_recognition.launch.py", "heatmaps:=maybe")
    assert launch.proc.wait(timeout=60) != 0
    assert "heatmaps:='maybe' must be true or false" in launch.log()


def test_demo_defaults_are_headless():
    shown = subprocess.run(["ros2", "launch", PACKAGE, "demo.launch.py", "--show-args"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    defaults = dict(re.findall(r"^    '(\w+)':\n(?:        .*\n)*?        \(default: (.*)\)$", shown, re.M))
    assert defaults["rviz"] == defaults["record"] == "'false'", shown


def test_demo_in_a_namespace_records_and_stops_cleanly(ros2_daemon, launches, executor, graph, tmp_path):
    from emotion_msgs.msg import EmotionArray

    from emotion_recognition_ros.tools.bag_io import ros_distro, summarize

    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("rviz2")
        rviz_args: list[str] = []  # installed: it would open a window; the headless default is what we test
    except PackageNotFoundError:
        rviz_args = ["rviz:=true"]  # asked for but missing: the demo must log that and run on
    bag = tmp_path / "demo_bag"
    launch = launches("demo.launch.py", "namespace:=robot1", "record:=true", f"bag:={bag}", "device:=cpu",
                      "rate:=5.0", *rviz_args)
    wait_for_node(executor, graph, launch, "emotion_node", "/robot1", "/robot1/diagnostics")
    answers: list = []
    graph.create_subscription(EmotionArray, "/robot1/emotion", answers.append, 10)
    assert spin_until(executor, lambda: any(a.emotions for a in answers), 60), \
        f"no faces on /robot1/emotion from the demo camera:\n{launch.log()[-3000:]}"
    nodes = {n for n in graph.get_node_names_and_namespaces() if n[0] in ("emotion_node", "image_source",
                                                                         "bag_recorder")}
    assert {ns for _, ns in nodes} == {"/robot1"} and len(nodes) == 3, nodes
    if rviz_args:
        assert "rviz2 is not installed" in launch.log()
    # The recorder subscribes to each topic once it sees a publisher; then let a few more answers go by.
    recorded = {"/robot1/image_raw", "/robot1/camera_info", "/robot1/emotion", "/robot1/diagnostics"}
    assert spin_until(executor, lambda: recorded <= {t for t, _ in graph.get_subscriber_names_and_types_by_node(
        "bag_recorder", "/robot1")}, 30), f"bag_recorder did not subscribe to {sorted(recorded)}"
    for name, namespace in nodes:
        moved = node_topics(graph, name, namespace) - GLOBAL_TOPICS
        assert moved and all(t.startswith("/robot1/") for t in moved), (name, sorted(moved))
    seen = len(answers)
    assert spin_until(executor, lambda: len(answers) >= seen + 3, 30), "the demo stopped answering"
    launch.remember_children()
    stop_cleanly(launch)
    summary = summarize(bag)
    assert summary.topics["/robot1/image_raw"][1] > 0 and summary.topics["/robot1/emotion"][1] > 0, summary
    # The camera waited for the recorder on both of its topics: every frame has its camera info (but the one
    # in flight when SIGINT reached the camera and the recorder together).
    assert abs(summary.topics["/robot1/image_raw"][1] - summary.topics["/robot1/camera_info"][1]) <= 1, summary
    assert "has no /robot1/" not in launch.log(), launch.log()[-3000:]  # the recorder's warning at close
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["ros_distro"] == ros_distro() != "rosbags"


def ros2_lifecycle(*args: str) -> str:
    """`ros2 lifecycle ARGS --no-daemon` as a user types it (no daemon left behind); its output."""
    proc = subprocess.run(["ros2", "lifecycle", *args, "--no-daemon", "--spin-time", "5"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"ros2 lifecycle {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout.strip()


def test_autostart_false_starts_the_node_managed_for_ros2_lifecycle(launches, camera, executor, graph, tmp_path):
    params = write_params(tmp_path / "my.yaml", **MY_YAML)
    launch = launches("emotion_recognition.launch.py", f"params_file:={params}", "autostart:=false")
    wait_for_node(executor, graph, launch, "emotion_node", "/", "/diagnostics")
    assert ros2_lifecycle("get", "/emotion_node") == "unconfigured [1]"
    assert "/my_cam/image_raw" not in node_topics(graph, "emotion_node", "/")  # no input until active
    assert "Transitioning successful" in ros2_lifecycle("set", "/emotion_node", "configure")
    assert ros2_lifecycle("get", "/emotion_node") == "inactive [2]"
    assert "Transitioning successful" in ros2_lifecycle("set", "/emotion_node", "activate")
    assert ros2_lifecycle("get", "/emotion_node") == "active [3]"
    answers = answers_camera(executor, graph, camera("/my_cam/image_raw"), "/emotion")
    assert any(a.emotions for a in answers), f"no face answered once active:\n{launch.log()[-3000:]}"
    stop_cleanly(launch)
