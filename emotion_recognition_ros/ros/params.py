"""The emotion node's ROS parameters, declared from the core's table (core/config.py) plus the node's own.

Each parameter is declared with its description, its range (rclpy refuses values outside it), its choices
(refused here, at declaration and on every later set) and read-only where it is used only at start-up. Renamed
parameters are refused with the new name, never silently ignored.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core.config import PIPELINE_PARAMETERS, ParamSpec, choice_problem
from ..core.settings_check import check_values
from .qos import RELIABILITIES
TOPIC_PARAMETERS = ("image_topic", "emotion_topic", "heatmap_topic", "annotated_topic")

NODE_PARAMETERS: dict[str, ParamSpec] = {
    "publish_heatmap": ParamSpec(True, "publish heatmaps (explain_method at explain_layer) on heatmap_topic, "
                                 "computed only while someone subscribes"),
    "heatmap_rate_hz": ParamSpec(2.0, "most heatmaps published per second (0 = never)", (0.0, 60.0)),
    "heatmap_every_frame": ParamSpec(False, "make a heatmap for every frame's faces in the main thread: each "
                                     "Emotion then carries its region shares (explained_class, region_names, "
                                     "region_shares) and the annotated image shows the map; costs one explanation "
                                     "per frame (docs/node.md, Heatmaps)"),
    "image_topic": ParamSpec("image_raw", "sensor_msgs/Image input topic (relative = in the node's namespace)",
                             read_only=True),
    "compressed_topic": ParamSpec("", "optional sensor_msgs/CompressedImage input topic (empty = off)",
                                  read_only=True),
    "emotion_topic": ParamSpec("emotion", "emotion_msgs/EmotionArray output topic", read_only=True),
    "heatmap_topic": ParamSpec("emotion/heatmap", "heatmap overlay image topic", read_only=True),
    "annotated_topic": ParamSpec("emotion/annotated", "annotated debug image topic", read_only=True),
    # The same names as image_source's publisher QoS: one name per concept.
    "reliability": ParamSpec("best_effort", "input QoS reliability: best_effort (accepts any camera) or reliable",
                             choices=RELIABILITIES, read_only=True),
    "qos_depth": ParamSpec(5, "input QoS history depth (keep last); the node itself keeps only the newest frame",
                           (1, 100), read_only=True),
    "max_image_size": ParamSpec(8192, "largest accepted image side, pixels", (16, 65535)),
    "diagnostics_rate_hz": ParamSpec(1.0, "rate of /diagnostics messages", (0.1, 10.0), read_only=True),
    "autostart": ParamSpec(True, "configure and activate at start-up; false: wait unconfigured for a lifecycle "
                           "manager (ros2 lifecycle set /emotion_node configure, then activate)", read_only=True),
    "ros4hri": ParamSpec(False, "also publish REP-155 (ROS4HRI) faces: /humans/faces/tracked and "
                         "/humans/faces/<id>/{roi,cropped,aligned,landmarks,expression} (needs hri_msgs)",
                         read_only=True),
    "ros4hri_image_size": ParamSpec(128, "side of the REP-155 cropped and aligned face images, pixels", (16, 1024),
                                    read_only=True),
    "ros4hri_timeout_s": ParamSpec(1.0, "a face's REP-155 topics are removed this long after it was last published",
                                   (0.0, 60.0), read_only=True),
}
EMOTION_NODE_PARAMETERS: dict[str, ParamSpec] = {**PIPELINE_PARAMETERS, **NODE_PARAMETERS}
RENAMED_PARAMETERS = {"input_reliability": "reliability", "input_depth": "qos_depth", "model_path": "model"}


def descriptor(name: str, spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=name, description=spec.description, read_only=spec.read_only,
                               dynamic_typing=spec.any_type)
    if spec.choices is not None:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
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
    old -> new); returns their values. Every node of the package declares its parameters this way.
    A value outside a spec's choices raises ValueError here, and is refused when set later."""
    refuse_renamed(node.get_name(), given_values(node, renamed or {}), renamed or {})
    for name, spec in specs.items():
        node.declare_parameter(name, ros_value(spec.default), descriptor(name, spec))
    values = {name: node.get_parameter(name).value for name in specs}
    if reason := choices_problem(specs, values):
        raise ValueError(f"{node.get_name()}: {reason}")
    node.add_on_set_parameters_callback(lambda changed: _refuse_unknown_choices(specs, changed))
    return values


def choices_problem(specs: Mapping[str, ParamSpec], values: Mapping[str, Any]) -> str | None:
    """The first value of `values` outside its spec's choices, as a reason, or None."""
    for name, value in values.items():
        if name in specs and (reason := choice_problem(name, specs[name], value)):
            return reason
    return None


def _refuse_unknown_choices(specs: Mapping[str, ParamSpec], changed: list[Parameter]) -> SetParametersResult:
    reason = choices_problem(specs, {prm.name: prm.value for prm in changed})
    return SetParametersResult(successful=reason is None, reason=reason or "")


def given_values(node: Node, names: Iterable[str]) -> list[str]:
    """Which of `names` the user gave a value for (overrides, --ros-args, params files), through rclpy's public
    API: each is declared for a moment without a default, read, and undeclared again."""
    given = []
    for name in names:
        declared = node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True))
        if declared.type_ != Parameter.Type.NOT_SET:
            given.append(name)
        node.undeclare_parameter(name)
    return given


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
