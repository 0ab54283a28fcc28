"""Launch the emotion node on a camera topic.

    ros2 launch emotion_recognition_ros emotion_recognition.launch.py camera_topic:=/my_camera/image_raw
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py params_file:=my.yaml namespace:=robot1
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py model:=/path/to/model device:=cuda
    ros2 launch emotion_recognition_ros emotion_recognition.launch.py ros4hri:=true autostart:=false

Parameters come from params_file (default config/emotion_node.yaml). The arguments camera_topic, model, device,
heatmaps, ros4hri and autostart override their parameter only when given, so a params_file is never overridden by
a default. autostart:=false starts the node managed: unconfigured, until a lifecycle manager (or `ros2 lifecycle
set /emotion_node configure`, then `activate`) brings it up.
Topics are relative (image_raw, emotion, emotion/heatmap, emotion/annotated, diagnostics): namespace:=robot1
moves them all under /robot1, and camera_topic (or a params_file's image_topic) points the input elsewhere.
Sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA unless it is already set (Fast DDS's default transports drop
most camera-sized frames for best-effort subscribers).
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_recognition_ros"
# launch argument -> (node parameter, type). Empty (the default) = keep the params_file's value.
OVERRIDES = {"camera_topic": ("image_topic", str), "model": ("model", str), "device": ("device", str),
             "heatmaps": ("publish_heatmap", bool), "ros4hri": ("ros4hri", bool), "autostart": ("autostart", bool)}
BOOLEANS = {"true": True, "false": False}


def _parameter_value(argument: str, text: str, kind: type):
    if kind is not bool:
        return ParameterValue(text, value_type=str)  # launch would read "0" or "null" as YAML otherwise
    if text.lower() not in BOOLEANS:
        raise ValueError(f"launch argument {argument}:={text!r} must be true or false")
    return BOOLEANS[text.lower()]


def given_overrides(context: LaunchContext) -> dict:
    """The node parameters of the override arguments that were given (non-empty)."""
    overrides = {}
    for argument, (parameter, kind) in OVERRIDES.items():
        text = context.launch_configurations.get(argument, "").strip()
        if text:
            overrides[parameter] = _parameter_value(argument, text, kind)
    return overrides


def _emotion_node(context: LaunchContext) -> list:
    overrides = given_overrides(context)
    parameters = [LaunchConfiguration("params_file")] + ([overrides] if overrides else [])
    return [Node(package=PACKAGE, executable="emotion_node", name="emotion_node", output="screen",
                 emulate_tty=True, parameters=parameters)]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "emotion_node.yaml"]),
                              description="YAML file with the node's parameters (key /** or emotion_node)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and all its topics, e.g. robot1"),
        DeclareLaunchArgument("camera_topic", default_value="",
                              description="sensor_msgs/Image topic to read (relative = in the namespace); "
                                          "empty = params_file's image_topic"),
        DeclareLaunchArgument("model", default_value="",
                              description="default | ckplus6 | a .safetensors file; empty = params_file's model"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda | cuda:N; empty = params_file's device"),
        DeclareLaunchArgument("heatmaps", default_value="",
                              description="true | false: publish Grad-CAM heatmaps; empty = params_file's publish_heatmap"),
        DeclareLaunchArgument("ros4hri", default_value="",
                              description="true | false: also publish REP-155 faces under /humans/faces (needs "
                                          "hri_msgs); empty = params_file's ros4hri"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="true | false: false starts the node managed, unconfigured until "
                                          "configured and activated; empty = params_file's autostart"),
        DeclareLaunchArgument("fastdds_transports",
                              default_value=EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value="LARGE_DATA"),
                              description="Fast DDS builtin transports (LARGE_DATA keeps camera frames)"),
    ]
    return LaunchDescription([
        *arguments,
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", LaunchConfiguration("fastdds_transports")),
        GroupAction([PushRosNamespace(LaunchConfiguration("namespace")), OpaqueFunction(function=_emotion_node)]),
    ])
