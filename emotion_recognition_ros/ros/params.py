"""The emotion node's ROS parameters, declared from the core's table (core/config.py) plus the node's own.

Each parameter is declared with its description, its range (rclpy refuses values outside it) and read-only
where it is used only at start-up. Renamed parameters are refused with the new name, never silently ignored.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core.config import PIPELINE_PARAMETERS, ParamSpec, check_values

RELIABILITIES = ("best_effort", "reliable")
TOPIC_PARAMETERS = ("image_topic", "emotion_topic", "heatmap_topic", "annotated_topic")

NODE_PARAMETERS: dict[str, ParamSpec] = {
    "publish_heatmap": ParamSpec(True, "publish Grad-CAM heatmaps (computed only while someone subscribes)"),
    "heatmap_rate_hz": ParamSpec(2.0, "most Grad-CAM heatmaps per second (0 = never)", (0.0, 60.0)),
    "image_topic": ParamSpec("image_raw", "sensor_msgs/Image input topic (relative = in the node's namespace)",
                             read_only=True),
    "compressed_topic": ParamSpec("", "optional sensor_msgs/CompressedImage input topic (empty = off)",
                                  read_only=True),
    "emotion_topic": ParamSpec("emotion", "emotion_msgs/EmotionArray output topic", read_only=True),
    "heatmap_topic": ParamSpec("emotion/heatmap", "Grad-CAM overlay image topic", read_only=True),
    "annotated_topic": ParamSpec("emotion/annotated", "annotated debug image topic", read_only=True),
    # The same names as image_source's publisher QoS: one name per concept.
    "reliability": ParamSpec("best_effort", "input QoS reliability: best_effort (accepts any camera) or reliable",
                             choices=RELIABILITIES, read_only=True),
    "qos_depth": ParamSpec(5, "input QoS history depth (keep last); the node itself keeps only the newest frame",
                           (1, 100), read_only=True),
    "max_image_size": ParamSpec(8192, "largest accepted image side, pixels", (16, 65535)),
    "diagnostics_rate_hz": ParamSpec(1.0, "rate of /diagnostics messages", (0.1, 10.0), read_only=True),
}
EMOTION_NODE_PARAMETERS: dict[str, ParamSpec] = {**PIPELINE_PARAMETERS, **NODE_PARAMETERS}
RENAMED_PARAMETERS = {"input_reliability": "reliability", "input_depth": "qos_depth", "model_path": "model"}


def descriptor(name: str, spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=name, description=spec.description, read_only=spec.read_only,
                               dynamic_typing=spec.any_type)
    if spec.bounds is not None and isinstance(spec.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.bounds[0]),
                                                        to_value=float(spec.bounds[1]))]
    elif spec.bounds is not None and isinstance(spec.default, int):
        desc.integer_range = [IntegerRange(from_value=int(spec.bounds[0]), to_value=int(spec.bounds[1]), step=1)]
    return desc


def ros_value(value: Any) -> Any:
    """A default as rclpy stores it (tuples are lists)."""
    return list(value) if isinstance(value, tuple) else value


def declare(node: Node, specs: Mapping[str, ParamSpec], renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Declare every parameter of `specs` on `node` (after refusing values given under a `renamed` old name,
    old -> new); returns their values. Every node of the package declares its parameters this way."""
    refuse_renamed(node.get_name(), node._parameter_overrides, renamed or {})
    for name, spec in specs.items():
        node.declare_parameter(name, ros_value(spec.default), descriptor(name, spec))
    return {name: node.get_parameter(name).value for name in specs}


def refuse_renamed(node_name: str, given: Iterable[str], renamed: Mapping[str, str]) -> None:
    """A value given under an old parameter name is an error naming the new one (rclpy would drop it silently)."""
    old = sorted(set(given) & renamed.keys())
    if old:
        renames = ", ".join(f"'{o}' is now '{renamed[o]}'" for o in old)
        raise ValueError(f"{node_name}: renamed parameter(s): {renames}")


def check(values: Mapping[str, Any]) -> str | None:
    """The reason a set of the node's parameter values is unusable, or None (ranges are checked by rclpy)."""
    if reason := check_values(values):
        return reason
    if "reliability" in values and values["reliability"] not in RELIABILITIES:
        return f"reliability must be best_effort or reliable, got '{values['reliability']}'"
    for key in TOPIC_PARAMETERS:
        if key in values and not values[key]:
            return f"{key} must not be empty"
    return None


def as_overrides(overrides: Mapping[str, Any] | Iterable[Parameter] | None) -> list[Parameter]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [Parameter(k, value=v) for k, v in overrides.items()]
    return list(overrides)
