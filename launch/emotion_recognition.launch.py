"""Launch the emotion node on a camera topic.

    ros2 launch emotion_recognition_ros emotion_recognition.launch.py image_topic:=/my_camera/image_raw
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py params_file:=my.yaml namespace:=robot1
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py model:=/path/to/model device:=cuda
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py ros4hri:=true autostart:=false

Parameters come from params_file (default config/emotion_node.yaml). Every node parameter is also a launch
argument of the same name (generated from the node's parameter table, ros/launch_args.py; `--show-args` lists
them with their defaults); one overrides its parameter only when given, so a params_file is never overridden by a
default. camera_topic and heatmaps still work for one release as image_topic and publish_heatmap.
autostart:=false starts the node managed: unconfigured, until a lifecycle manager (or `ros2 lifecycle
set /emotion_node configure`, then `activate`) brings it up.
Topics are relative (image_raw, emotion, emotion/heatmap, emotion/annotated, diagnostics): namespace:=robot1
moves them all under /robot1, and image_topic points the input elsewhere.
The DDS transport is the package's Fast DDS profile (ros/transport.py) unless the environment or
fastdds_transports chose one.
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from emotion_recognition_ros.ros.launch_args import (declare_arguments, deprecation_logs, given_parameters,
                                                     transport_actions)
from emotion_recognition_ros.ros.params import EMOTION_NODE_PARAMETERS

PACKAGE = "emotion_recognition_ros"


def _emotion_node(context: LaunchContext) -> list:
    overrides, notes = given_parameters(context, EMOTION_NODE_PARAMETERS)
    parameters = [LaunchConfiguration("params_file")] + ([overrides] if overrides else [])
    return [*deprecation_logs(notes),
            Node(package=PACKAGE, executable="emotion_node", name="emotion_node", output="screen",
                 emulate_tty=True, parameters=parameters)]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "emotion_node.yaml"]),
                              description="YAML file with the node's parameters (key /** or emotion_node)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and all its topics, e.g. robot1"),
        *declare_arguments(EMOTION_NODE_PARAMETERS),
        *transport_actions(),
        GroupAction([PushRosNamespace(LaunchConfiguration("namespace")), OpaqueFunction(function=_emotion_node)]),
    ])
