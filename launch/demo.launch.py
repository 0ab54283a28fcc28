"""The demo: an image source and the emotion node, headless unless RViz is asked for.

    ros2 launch emotion_recognition_ros demo.launch.py                       # synthetic scenes, no RViz
    ros2 launch emotion_recognition_ros demo.launch.py rviz:=true            # + RViz (when rviz2 is installed)
    ros2 launch emotion_recognition_ros demo.launch.py source:=/path/to/video.mp4 namespace:=robot1
    ros2 launch emotion_recognition_ros demo.launch.py source:=0 record:=true bag:=bags/session   # webcam + bag
    ros2 launch emotion_recognition_ros demo.launch.py source:=clip.mp4 width:=640 max_frames:=300 \
        ground_truth_file:=truth.csv                 # 640 wide (aspect kept), stops after 300 frames

The camera publishes image_raw and camera_info, the node emotion, emotion/heatmap, emotion/annotated and
diagnostics, all relative to namespace (default: the root; namespace:=robot1 gives /robot1/image_raw, ...). record:=true writes the
camera, emotion and diagnostics topics to bag:=PATH (default bags/emotion_demo_DATE-TIME, a folder git ignores)
with `ros2 bag record` when rosbag2 is installed, else with this package's bag_recorder (same rosbag2 format;
evaluate it with `evaluate_bag PATH`); the camera then holds its first frame until the recorder and the node
have subscribed, so the bag has every frame. rviz:=true without rviz2 installed logs that and runs on without it.
Every parameter of the camera (but its topics, QoS and subscriber waits) and of the emotion node (but image_topic)
is a launch argument of the same name, generated from the nodes' parameter tables (ros/launch_args.py; empty =
the params file's value; `--show-args` lists them with their defaults).
"""
import importlib.util
from datetime import datetime

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, GroupAction, IncludeLaunchDescription, LogInfo,
                            OpaqueFunction)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from emotion_recognition_ros.ros.image_source_node import PARAMETERS as IMAGE_SOURCE_PARAMETERS
from emotion_recognition_ros.ros.launch_args import (DEPRECATED_ARGUMENTS, TRANSPORTS_ARGUMENT, declare_arguments,
                                                     forward_arguments, given_parameters, transport_actions)
from emotion_recognition_ros.ros.params import EMOTION_NODE_PARAMETERS

PACKAGE = "emotion_recognition_ros"
# The emotion node reads what the camera publishes, so its image_topic is no argument of the demo.
EMOTION_PARAMETERS = {k: v for k, v in EMOTION_NODE_PARAMETERS.items() if k != "image_topic"}
EMOTION_ALIASES = {k: v for k, v in DEPRECATED_ARGUMENTS.items() if v in EMOTION_PARAMETERS}
# The camera's arguments are those of its parameters the emotion node has no namesake of (the recorder
# decides how many subscribers it waits for).
CAMERA_PARAMETERS = {k: v for k, v in IMAGE_SOURCE_PARAMETERS.items()
                     if k not in EMOTION_NODE_PARAMETERS and not k.startswith("wait_for_")}
RECORDED_TOPICS = ("image_raw", "camera_info", "emotion", "diagnostics")


def is_installed(package: str) -> bool:
    try:
        get_package_share_directory(package)
        return True
    except PackageNotFoundError:
        return False


def absolute(namespace: str, topic: str) -> str:
    return "/" + "/".join(part for part in (namespace.strip("/"), topic) if part)


def _rviz(context: LaunchContext) -> list:
    if not is_installed("rviz2"):
        return [LogInfo(msg="rviz:=true, but rviz2 is not installed (apt-get install ros-$ROS_DISTRO-rviz2): "
                            "running without RViz")]
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "emotion_demo.rviz"])
    return [Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", config])]


def _recorder(context: LaunchContext) -> list:
    """`ros2 bag record` when rosbag2 is there, else bag_recorder; the topics made absolute in the namespace."""
    topics = [absolute(context.launch_configurations.get("ros_namespace", "/"), t) for t in RECORDED_TOPICS]
    bag = LaunchConfiguration("bag").perform(context) or datetime.now().strftime("bags/emotion_demo_%Y%m%d-%H%M%S")
    if importlib.util.find_spec("ros2bag") is not None:
        return [ExecuteProcess(cmd=["ros2", "bag", "record", "-o", bag, *topics], output="screen")]
    return [
        LogInfo(msg="record:=true: rosbag2 (ros2 bag) is not installed, recording with bag_recorder instead"),
        Node(package=PACKAGE, executable="bag_recorder", name="bag_recorder", output="screen",
             parameters=[{"output": bag, "topics": topics}]),
    ]


def _camera(context: LaunchContext) -> list:
    overrides, _ = given_parameters(context, CAMERA_PARAMETERS, aliases={})
    record = LaunchConfiguration("record").perform(context).lower() == "true"
    share = FindPackageShare(PACKAGE)
    return [Node(package=PACKAGE, executable="image_source", name="image_source", output="screen", parameters=[
        PathJoinSubstitution([share, "config", "image_source.yaml"]),
        overrides,
        # The node (and with record:=true the recorder) first: discovery takes seconds, and frames published
        # before would reach no one.
        # The recorder subscribes to `emotion` only once it has discovered the node's publisher: wait for that too,
        # or the answers to the first frames miss the bag (2 of 100 short launches in benchmarks.dds_stress).
        {"wait_for_subscribers": 2 if record else 1, "wait_for_info_subscribers": 1 if record else 0,
         "wait_for_topics": "emotion" if record else ""},
    ])]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "emotion_node.yaml"]),
                              description="YAML file with the emotion node's parameters"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start RViz with config/emotion_demo.rviz (skipped if rviz2 is not installed)"),
        DeclareLaunchArgument("record", default_value="false",
                              description="record camera, emotion and diagnostics (ros2 bag, else bag_recorder)"),
        DeclareLaunchArgument("bag", default_value="",
                              description="bag folder for record:=true (must not exist); empty = "
                                          "bags/emotion_demo_DATE-TIME"),
        *declare_arguments(CAMERA_PARAMETERS, "config/image_source.yaml", aliases={}),
        *declare_arguments(EMOTION_PARAMETERS, aliases=EMOTION_ALIASES),
    ]
    emotion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "emotion_recognition.launch.py"])),
        launch_arguments={
            **forward_arguments([*EMOTION_PARAMETERS, *EMOTION_ALIASES, TRANSPORTS_ARGUMENT]),
            "namespace": "",  # already pushed by the group below
            "image_topic": "image_raw",  # what image_source publishes, whatever params_file says
            "params_file": LaunchConfiguration("params_file"),
        }.items(),
    )
    return LaunchDescription([
        *arguments,
        *transport_actions(),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=_camera),
            emotion,
            OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz"))),
            OpaqueFunction(function=_recorder, condition=IfCondition(LaunchConfiguration("record"))),
        ]),
    ])
