"""ros/params.py: the parameter table drives declaration completely (ranges, read-only, choices, renamed names)."""
from __future__ import annotations

import pytest

from emotion_recognition_ros.core.config import ParamSpec

SPECS = {
    "mode": ParamSpec("fast", "a run-time choice", choices=("fast", "exact")),
    "reliability": ParamSpec("reliable", "a start-up choice", choices=("best_effort", "reliable"), read_only=True),
    "depth": ParamSpec(5, "a bounded int", (1, 10)),
}


def node_with(ros_context, overrides: dict, renamed: dict | None = None):
    import rclpy
    from rclpy.parameter import Parameter

    from emotion_recognition_ros.ros.params import declare

    node = rclpy.create_node("params_probe", context=ros_context,
                             parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        return node, declare(node, SPECS, renamed)
    except Exception:
        node.destroy_node()
        raise


def test_a_value_outside_the_choices_is_refused_at_declaration(ros_context):
    with pytest.raises(ValueError, match=r"params_probe: unknown reliability 'sometimes' \(reliability must be one "
                                         r"of: best_effort, reliable\)"):
        node_with(ros_context, {"reliability": "sometimes"})
    node, values = node_with(ros_context, {"reliability": "best_effort"})
    assert values == {"mode": "fast", "reliability": "best_effort", "depth": 5}
    described = node.describe_parameter("mode")
    assert described.additional_constraints == "one of: fast, exact"
    node.destroy_node()


def test_a_value_outside_the_choices_is_refused_when_set(ros_context):
    from rclpy.parameter import Parameter

    node, _ = node_with(ros_context, {})
    result = node.set_parameters([Parameter("mode", value="slow")])[0]
    assert not result.successful and "unknown mode 'slow'" in result.reason
    assert node.get_parameter("mode").value == "fast"
    assert node.set_parameters([Parameter("mode", value="exact")])[0].successful
    node.destroy_node()


def test_renamed_names_are_found_through_the_public_api_and_refused(ros_context):
    with pytest.raises(ValueError, match="'old_depth' is now 'depth'"):
        node_with(ros_context, {"old_depth": 3}, renamed={"old_depth": "depth"})
    node, values = node_with(ros_context, {"depth": 3}, renamed={"old_depth": "depth"})
    assert values["depth"] == 3 and not node.has_parameter("old_depth")  # the probe leaves nothing declared
    node.destroy_node()
