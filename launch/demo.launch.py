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
"""
import importlib.util
from datetime import datetime

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, GroupAction, IncludeLaunchDescription, LogInfo,
                            OpaqueFunction, SetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_recognition_ros"
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


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("source", default_value="synthetic",
                              description="synthetic | astronaut | scenes | VIDEO | IMAGE_FOLDER | camera index"),
        DeclareLaunchArgument("rate", default_value="10.0", description="frames per second to publish"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "emotion_node.yaml"]),
                              description="YAML file with the emotion node's parameters"),
        DeclareLaunchArgument("model", default_value="", description="default | ckplus6 | a .safetensors file; empty = from params_file"),
        DeclareLaunchArgument("device", default_value="", description="auto | cpu | cuda | cuda:N; empty = from params_file"),
        DeclareLaunchArgument("heatmaps", default_value="", description="true | false; empty = from params_file"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start RViz with config/emotion_demo.rviz (skipped if rviz2 is not installed)"),
        DeclareLaunchArgument("record", default_value="false",
                              description="record camera, emotion and diagnostics (ros2 bag, else bag_recorder)"),
        DeclareLaunchArgument("bag", default_value="",
                              description="bag folder for record:=true (must not exist); empty = "
                                          "bags/emotion_demo_DATE-TIME"),
        DeclareLaunchArgument("width", default_value="0",
                              description="frame width (0 with height 0 = the source's own size; one of them 0 "
                                          "keeps the aspect ratio)"),
        DeclareLaunchArgument("height", default_value="0", description="frame height (0 = from width, or the source's)"),
        DeclareLaunchArgument("max_frames", default_value="0", description="stop the camera after this many frames "
                                                                           "(0 = never)"),
        DeclareLaunchArgument("ground_truth_file", default_value="",
                              description="synthetic sources: write each frame's labelled faces here (CSV for "
                                          "evaluate_bag --truth)"),
        DeclareLaunchArgument("fastdds_transports",
                              default_value=EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value="LARGE_DATA"),
                              description="Fast DDS builtin transports (LARGE_DATA keeps camera frames)"),
    ]
    camera = Node(
        package=PACKAGE,
        executable="image_source",
        name="image_source",
        output="screen",
        parameters=[
            PathJoinSubstitution([share, "config", "image_source.yaml"]),
            {
                # value_type=str: a camera index like 0 must stay the string the node declares.
                "source": ParameterValue(LaunchConfiguration("source"), value_type=str),
                "rate": ParameterValue(LaunchConfiguration("rate"), value_type=float),
                "width": ParameterValue(LaunchConfiguration("width"), value_type=int),
                "height": ParameterValue(LaunchConfiguration("height"), value_type=int),
                "max_frames": ParameterValue(LaunchConfiguration("max_frames"), value_type=int),
                "ground_truth_file": ParameterValue(LaunchConfiguration("ground_truth_file"), value_type=str),
                # The node (and with record:=true the recorder) first: discovery takes seconds, and frames
                # published before would reach no one.
                "wait_for_subscribers": ParameterValue(
                    PythonExpression(["2 if '", LaunchConfiguration("record"), "'.lower() == 'true' else 1"]),
                    value_type=int),
                "wait_for_info_subscribers": ParameterValue(
                    PythonExpression(["1 if '", LaunchConfiguration("record"), "'.lower() == 'true' else 0"]),
                    value_type=int),
            },
        ],
    )
    emotion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "emotion_recognition.launch.py"])),
        launch_arguments={
            "namespace": "",  # already pushed by the group below
            "camera_topic": "image_raw",  # what image_source publishes, whatever params_file says
            "params_file": LaunchConfiguration("params_file"),
            "model": LaunchConfiguration("model"),
            "device": LaunchConfiguration("device"),
            "heatmaps": LaunchConfiguration("heatmaps"),
            "fastdds_transports": LaunchConfiguration("fastdds_transports"),
        }.items(),
    )
    return LaunchDescription([
        *arguments,
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", LaunchConfiguration("fastdds_transports")),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            camera,
            emotion,
            OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz"))),
            OpaqueFunction(function=_recorder, condition=IfCondition(LaunchConfiguration("record"))),
        ]),
    ])
