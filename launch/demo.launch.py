"""The demo with system ROS 2: image source + emotion node + RViz (annotated image and heatmap).

    ros2 launch emotion_recognition_ros demo.launch.py                       # embedded synthetic scenes
    ros2 launch emotion_recognition_ros demo.launch.py source:=/path/to/video.mp4
    ros2 launch emotion_recognition_ros demo.launch.py source:=0 record:=true   # webcam, and ros2 bag record

With record:=true, `ros2 bag record` writes the camera, /emotion and /diagnostics to bag:=PATH
(evaluate it with `evaluate_bag PATH`).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_recognition_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("source", default_value="synthetic",
                              description="synthetic | astronaut | scenes | VIDEO | IMAGE_FOLDER | camera index"),
        DeclareLaunchArgument("rate", default_value="10.0", description="frames per second to publish"),
        DeclareLaunchArgument("model", default_value="", description="classifier file; empty = the shipped model"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("heatmaps", default_value="true", description="publish Grad-CAM heatmaps"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz with config/emotion_demo.rviz"),
        DeclareLaunchArgument("record", default_value="false", description="run `ros2 bag record` as well"),
        DeclareLaunchArgument("bag", default_value="emotion_demo_bag", description="bag folder for record:=true"),
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
            },
        ],
    )
    emotion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "emotion_recognition.launch.py"])),
        launch_arguments={
            "camera_topic": "/camera/image_raw",
            "model": LaunchConfiguration("model"),
            "device": LaunchConfiguration("device"),
            "heatmaps": LaunchConfiguration("heatmaps"),
            "fastdds_transports": LaunchConfiguration("fastdds_transports"),
        }.items(),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "emotion_demo.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    record = ExecuteProcess(
        cmd=["ros2", "bag", "record", "-o", LaunchConfiguration("bag"),
             "/camera/image_raw", "/camera/camera_info", "/emotion", "/diagnostics"],
        output="screen",
        condition=IfCondition(LaunchConfiguration("record")),
    )
    return LaunchDescription([
        *arguments,
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", LaunchConfiguration("fastdds_transports")),
        camera,
        emotion,
        rviz,
        record,
    ])
