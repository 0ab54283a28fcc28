"""Launch arguments generated from a node's parameter table, as yolo_ros's launch_params.py does.

Every parameter of the table becomes a launch argument of the same name, whose description is the parameter's
own plus its default. The argument's default is empty, meaning "keep the params file's value", so a params file
is never overridden by a launch default; config/emotion_node.yaml holds the table's defaults (a test checks it).
Launch files call `declare_arguments` for the arguments and `given_parameters` (in an OpaqueFunction) for the
overrides, and set the DDS transport with `transport_actions`; none of them declares a node argument by hand.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import yaml
from launch import LaunchContext
from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable,
                            UnsetEnvironmentVariable)
from launch.substitutions import LaunchConfiguration
from launch_ros.descriptions import ParameterValue

from ..core.config import ParamSpec
from .transport import PROFILE_VARIABLE, TRANSPORTS_VARIABLE, default_transport_env

# Launch argument names of earlier releases -> the parameter they set; they work for one more release.
DEPRECATED_ARGUMENTS = {"camera_topic": "image_topic", "heatmaps": "publish_heatmap"}
BOOLEANS = {"true": True, "false": False}
TRANSPORTS_ARGUMENT = "fastdds_transports"


def default_text(spec: ParamSpec) -> str:
    """The default as a user would type it after `name:=`."""
    value = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def argument_description(spec: ParamSpec, params_file: str) -> str:
    return f"{spec.description} [default {default_text(spec)}; empty = {params_file}'s value]"


def declare_arguments(specs: Mapping[str, ParamSpec], params_file: str = "params_file",
                      aliases: Mapping[str, str] = DEPRECATED_ARGUMENTS) -> list[DeclareLaunchArgument]:
    """One argument per parameter of `specs`, and the deprecated aliases of those among them."""
    arguments = [DeclareLaunchArgument(name, default_value="", description=argument_description(spec, params_file))
                 for name, spec in specs.items()]
    return arguments + [DeclareLaunchArgument(old, default_value="", description=f"deprecated: use {new}:=")
                        for old, new in aliases.items() if new in specs]


def parameter_value(argument: str, text: str, spec: ParamSpec) -> Any:
    """The parameter value of a launch argument's text, typed as the parameter's default."""
    default = spec.default
    if spec.any_type or isinstance(default, str):
        return ParameterValue(text, value_type=str)  # launch would read "0" or "null" as YAML otherwise
    if isinstance(default, bool):
        if text.lower() not in BOOLEANS:
            raise ValueError(f"launch argument {argument}:={text!r} must be true or false")
        return BOOLEANS[text.lower()]
    try:
        if isinstance(default, tuple):
            return [float(v) for v in yaml.safe_load(text)]
        return type(default)(text)
    except (TypeError, ValueError):
        raise ValueError(f"launch argument {argument}:={text!r} must be like {default_text(spec)}") from None


def given_parameters(context: LaunchContext, specs: Mapping[str, ParamSpec],
                     aliases: Mapping[str, str] = DEPRECATED_ARGUMENTS) -> tuple[dict, list[str]]:
    """The parameters whose arguments were given (non-empty), and a deprecation line per alias used. A value
    under the new name wins over one under its alias."""
    given = {name: context.launch_configurations.get(name, "").strip() for name in [*specs, *aliases]}
    overrides, notes = {}, []
    for old, new in aliases.items():
        if new in specs and given[old]:
            notes.append(f"launch argument {old}:= is deprecated, use {new}:= (it will be removed)")
            if not given[new]:
                overrides[new] = parameter_value(old, given[old], specs[new])
    for name, spec in specs.items():
        if given[name]:
            overrides[name] = parameter_value(name, given[name], spec)
    return overrides, notes


def deprecation_logs(notes: Iterable[str]) -> list[LogInfo]:
    return [LogInfo(msg=note) for note in notes]


def transport_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument(TRANSPORTS_ARGUMENT, default_value="",
                                 description="Fast DDS builtin transports (e.g. LARGE_DATA); empty = the package's "
                                             "profile config/fastdds_large_data.xml unless the environment chose")


def _transport(context: LaunchContext) -> list:
    chosen = context.launch_configurations.get(TRANSPORTS_ARGUMENT, "").strip()
    if chosen:
        # A profiles file in the environment (scripts/run sets the package's) would win over the variable: Fast DDS
        # ignores FASTDDS_BUILTIN_TRANSPORTS when a profile sets the transports (seen 2026-12-06: LARGE_DATA with
        # the profile also set opened no TCP socket). The argument is the user's explicit choice, so it wins.
        return [UnsetEnvironmentVariable(PROFILE_VARIABLE), SetEnvironmentVariable(TRANSPORTS_VARIABLE, chosen)]
    return [SetEnvironmentVariable(k, v) for k, v in default_transport_env().items()]


def transport_actions() -> list:
    """The transport argument and the environment it sets (ros/transport.py's default unless given)."""
    return [transport_argument(), OpaqueFunction(function=_transport)]


def forward_arguments(names: Iterable[str]) -> dict[str, LaunchConfiguration]:
    """launch_arguments for an included launch file: each of `names` passed on as given (empty if not)."""
    return {name: LaunchConfiguration(name) for name in names}
