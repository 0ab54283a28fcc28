"""Launch the emotion node on a camera topic.

    ros2 launch emotion_recognition_ros emotion_recognition.launch.py camera_topic:=/my_camera/image_raw
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py model:=/path/to/model device:=cuda

Parameters come from config/emotion_node.yaml (or params_file:=...); the launch arguments below override
the few that people change most. Sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA unless it is already set
(Fast DDS's default transports drop most camera-sized frames for best-effort subscribers).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_recognition_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to read faces from"),
        DeclareLaunchArgument("model", default_value="",
                              description="classifier file (.safetensors + .json); empty = the shipped model"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("heatmaps", default_value="true",
                              description="publish Grad-CAM heatmaps on /emotion/heatmap"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "emotion_node.yaml"]),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("fastdds_transports",
                              default_value=EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value="LARGE_DATA"),
                              description="Fast DDS builtin transports (LARGE_DATA keeps camera frames)"),
    ]
    node = Node(
        package=PACKAGE,
        executable="emotion_node",
        name="emotion_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                # value_type=str: launch would otherwise read "" or "0" as YAML (null, an int).
                "image_topic": ParameterValue(LaunchConfiguration("camera_topic"), value_type=str),
                "model_path": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "publish_heatmap": ParameterValue(LaunchConfiguration("heatmaps"), value_type=bool),
            },
        ],
    )
    return LaunchDescription([
        *arguments,
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", LaunchConfiguration("fastdds_transports")),
        node,
    ])
