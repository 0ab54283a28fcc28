"""Launch arguments come from the node's parameter table, and the shipped params file holds its defaults.

The launch files are loaded and their descriptions generated as `ros2 launch` does (no process started); the
params file is read as YAML. Each check is also run on a planted mismatch, to show it can fail.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Mapping

import pytest
import yaml

from conftest import REPO

# `launch.actions`, not `launch`: without the launch package, `import launch` finds this repository's own launch/
# folder as a namespace package (a fresh clone without ../shared/ros2-tools failed to collect here, 2026-12-06).
pytest.importorskip("launch.actions", reason="the launch package is not installed (no ../shared/ros2-tools at "
                    "make setup and no system ROS 2)")

from launch import LaunchContext  # noqa: E402
from launch.actions import DeclareLaunchArgument  # noqa: E402

from emotion_recognition_ros.core.config import ParamSpec  # noqa: E402
from emotion_recognition_ros.ros.launch_args import (argument_description, given_parameters,  # noqa: E402
                                                     parameter_value)
from emotion_recognition_ros.ros.params import EMOTION_NODE_PARAMETERS, ros_value  # noqa: E402


def launch_arguments(name: str) -> dict[str, DeclareLaunchArgument]:
    path = REPO / "launch" / name
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {a.name: a for a in module.generate_launch_description().entities if isinstance(a, DeclareLaunchArgument)}


def argument_mismatches(arguments: Mapping[str, DeclareLaunchArgument], specs: Mapping[str, ParamSpec]) -> list[str]:
    """Parameters without an argument, or whose argument's description (default included) is not the table's."""
    context = LaunchContext()
    problems = []
    for name, spec in specs.items():
        argument = arguments.get(name)
        if argument is None:
            problems.append(f"{name}: no launch argument")
        elif argument.description != argument_description(spec, "params_file"):
            problems.append(f"{name}: description {argument.description!r}")
        elif "".join(s.perform(context) for s in argument.default_value):
            problems.append(f"{name}: a default of its own would override the params file")
    return problems


def params_file_mismatches(path: Path, specs: Mapping[str, ParamSpec]) -> list[str]:
    (section,) = yaml.safe_load(path.read_text()).values()
    values = section["ros__parameters"]
    return [f"{name}: {values.get(name, 'missing')!r} in {path.name}, declared {ros_value(spec.default)!r}"
            for name, spec in specs.items() if values.get(name, "missing") != ros_value(spec.default)]


def test_every_node_parameter_is_a_launch_argument_with_its_default_and_description():
    assert argument_mismatches(launch_arguments("emotion_recognition.launch.py"), EMOTION_NODE_PARAMETERS) == []


def test_the_demo_passes_every_node_parameter_but_the_camera_topic():
    specs = {k: v for k, v in EMOTION_NODE_PARAMETERS.items() if k != "image_topic"}
    assert argument_mismatches(launch_arguments("demo.launch.py"), specs) == []


def test_the_params_file_holds_the_declared_defaults():
    assert params_file_mismatches(REPO / "config" / "emotion_node.yaml", EMOTION_NODE_PARAMETERS) == []


def test_the_checks_see_a_planted_mismatch(tmp_path):
    specs = dict(EMOTION_NODE_PARAMETERS)
    specs["max_faces"] = dataclasses.replace(specs["max_faces"], default=11)
    assert argument_mismatches(launch_arguments("emotion_recognition.launch.py"), specs) == [
        f"max_faces: description {argument_description(EMOTION_NODE_PARAMETERS['max_faces'], 'params_file')!r}"]
    planted = tmp_path / "emotion_node.yaml"
    planted.write_text((REPO / "config" / "emotion_node.yaml").read_text().replace("smoothing: 0.5", "smoothing: 0.6"))
    assert params_file_mismatches(planted, EMOTION_NODE_PARAMETERS) == [
        "smoothing: 0.6 in emotion_node.yaml, declared 0.5"]


def given(**arguments: str) -> tuple[dict, list[str]]:
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    overrides, notes = given_parameters(context, EMOTION_NODE_PARAMETERS)
    # Strings come wrapped (ParameterValue, so launch does not read "0" as a number): compare the text.
    return {k: getattr(v, "value", v) for k, v in overrides.items()}, notes


def test_only_given_arguments_override_typed_as_their_parameter():
    overrides, notes = given(max_faces="3", smoothing="0", align_faces="False", mtcnn_thresholds="[0.5, 0.6, 0.7]",
                             device="", track_iou=" ")
    assert overrides == {"max_faces": 3, "smoothing": 0.0, "align_faces": False, "mtcnn_thresholds": [0.5, 0.6, 0.7]}
    assert notes == []


def test_a_renamed_argument_still_works_for_a_release_with_one_line():
    overrides, notes = given(heatmaps="false", camera_topic="cam/image_raw", image_topic="other")
    assert overrides == {"publish_heatmap": False, "image_topic": "other"}  # the new name wins
    assert notes == ["launch argument camera_topic:= is deprecated, use image_topic:= (it will be removed)",
                     "launch argument heatmaps:= is deprecated, use publish_heatmap:= (it will be removed)"]


@pytest.mark.parametrize("name, text, expected", [("heatmaps", "maybe", "heatmaps:='maybe' must be true or false"),
                                                  ("max_faces", "many", "max_faces:='many' must be like 10")])
def test_a_bad_value_is_refused_with_its_argument_name(name, text, expected):
    spec = EMOTION_NODE_PARAMETERS["publish_heatmap" if name == "heatmaps" else name]
    with pytest.raises(ValueError, match=expected):
        parameter_value(name, text, spec)
