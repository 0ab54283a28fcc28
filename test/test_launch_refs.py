"""Launch files and params files refer only to things that exist.

Read with `ast`, so these checks run even where `launch`/`launch_ros` are not installed (test_launch.py
starts the files for real where they are): every executable they start must be a console script of
setup.py, every parameter they set and every key of a params file must be declared by that node (checked
on the real node, instantiated in-process), every config file must exist, and every LaunchConfiguration
must be declared.
"""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGE = "emotion_recognition_ros"
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
# Console script -> (module, node class): the nodes launch files may start from this package.
NODE_CLASSES = {
    "emotion_node": (f"{PACKAGE}.ros.emotion_node", "EmotionNode"),
    "image_source": (f"{PACKAGE}.ros.image_source_node", "ImageSourceNode"),
    "bag_recorder": (f"{PACKAGE}.tools.bag_recorder", "BagRecorder"),
}
EXTERNAL_EXECUTABLES = {("rviz2", "rviz2")}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == name]


def _kw(call: ast.Call, key: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def _const(node: ast.AST | None, module_constants: dict[str, str]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return module_constants.get(node.id)
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}


def generated_arguments() -> set[str]:
    """The launch arguments ros/launch_args.py declares from the emotion node's table (test_launch_args.py
    checks them)."""
    from emotion_recognition_ros.ros.params import EMOTION_NODE_PARAMETERS

    # Read from the source, not imported: launch_args imports the launch package, which a clone without
    # ../shared/ros2-tools lacks, and this test checks the launch files without it.
    tree = ast.parse((REPO / "emotion_recognition_ros" / "ros" / "launch_args.py").read_text())
    values = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("DEPRECATED_ARGUMENTS", "TRANSPORTS_ARGUMENT")}
    return {*EMOTION_NODE_PARAMETERS, *values["DEPRECATED_ARGUMENTS"], values["TRANSPORTS_ARGUMENT"]}


def _console_scripts() -> set[str]:
    text = (REPO / "setup.py").read_text()
    return set(re.findall(r'f?"(\w+) = \{?PACKAGE\}?\.', text))


def _declared(executable: str, ros_context) -> set[str]:
    module, cls = NODE_CLASSES[executable]
    node_class = getattr(importlib.import_module(module), cls)
    overrides = []
    if executable == "bag_recorder":
        from rclpy.parameter import Parameter

        overrides = [Parameter("output", value=str(Path(ros_context.tmp) / "bag"))]
    node = node_class(context=ros_context, parameter_overrides=overrides)
    try:
        return set(node._parameters)  # everything the node declared, after construction
    finally:
        if hasattr(node, "close"):
            node.close()
        node.destroy_node()


@pytest.fixture(scope="module")
def declared_params(tmp_path_factory):
    """Parameter names each of this package's nodes declares, by console-script name (nodes are built once)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    context.tmp = tmp_path_factory.mktemp("launch")
    cache: dict[str, set[str]] = {}

    def get(executable: str) -> set[str]:
        if executable not in cache:
            cache[executable] = _declared(executable, context)
        return cache[executable]

    yield get
    rclpy.shutdown(context=context)


def test_launch_files_exist_and_are_installed():
    assert {p.name for p in LAUNCH_FILES} >= {"emotion_recognition.launch.py", "demo.launch.py"}
    assert 'glob("launch/*.launch.py")' in (REPO / "setup.py").read_text()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references(path, declared_params):
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _module_constants(tree)
    scripts = _console_scripts()
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)

    declared_args = {_const(c.args[0], constants) for c in _calls(tree, "DeclareLaunchArgument")}
    used_args = {_const(c.args[0], constants) for c in _calls(tree, "LaunchConfiguration")}
    assert used_args <= declared_args, f"undeclared launch arguments {used_args - declared_args}"
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert _kw(call, "description") is not None, f"{_const(call.args[0], constants)} has no description"

    nodes = _calls(tree, "Node")
    assert nodes, "a launch file that starts no node"
    for call in nodes:
        package, executable = _const(_kw(call, "package"), constants), _const(_kw(call, "executable"), constants)
        if (package, executable) in EXTERNAL_EXECUTABLES:
            continue
        assert package == PACKAGE, f"unknown package {package}"
        assert executable in scripts, f"{executable} is not a console script in setup.py"
        params = _kw(call, "parameters")
        keys = {_const(k, constants) for d in ast.walk(params) if isinstance(d, ast.Dict) for k in d.keys} \
            if params is not None else set()
        undeclared = keys - declared_params(executable)
        assert not undeclared, f"{path.name}: {executable} does not declare {sorted(undeclared)}"

    # Files named in PathJoinSubstitution([share, "config"|"launch", NAME]) must exist in the source tree.
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = [_const(e, constants) for e in call.args[0].elts]
        if len(parts) >= 3 and parts[-2] in ("config", "launch"):
            assert (REPO / parts[-2] / parts[-1]).is_file(), f"{path.name} refers to missing {parts[-2]}/{parts[-1]}"

    # Included launch files must declare the arguments passed to them.
    for call in _calls(tree, "IncludeLaunchDescription"):
        target = next(c for c in ast.walk(call) if isinstance(c, ast.Call) and _name(c.func) == "PathJoinSubstitution")
        name = _const(target.args[0].elts[-1], constants)
        included = ast.parse((REPO / "launch" / name).read_text())
        inc_constants = _module_constants(included)
        accepted = {_const(c.args[0], inc_constants) for c in _calls(included, "DeclareLaunchArgument")}
        accepted |= generated_arguments()
        passed = {_const(k, constants) for d in ast.walk(call) if isinstance(d, ast.Dict) for k in d.keys
                  if k is not None}  # None: a `**forward_arguments(...)`, generated names
        assert passed <= accepted, f"{name} does not declare {passed - accepted}"

    # Camera frames need the package's transport unless the user chose otherwise (ros/launch_args.py).
    assert "transport_actions" in {_name(c.func) for c in ast.walk(tree) if isinstance(c, ast.Call)}


@pytest.mark.parametrize("name, executable", [("image_source.yaml", "image_source"),
                                              ("emotion_node.yaml", "emotion_node")])
def test_params_files_match_declared_parameters(name, executable, declared_params):
    data = yaml.safe_load((REPO / "config" / name).read_text())
    assert len(data) == 1, "one node per params file"
    (node_name, section), = data.items()
    keys = set(section["ros__parameters"])
    undeclared = keys - declared_params(executable)
    assert not undeclared, f"config/{name} sets undeclared parameters {sorted(undeclared)}"


def test_rviz_config_shows_annotated_image_and_heatmap():
    config = yaml.safe_load((REPO / "config" / "emotion_demo.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    shown = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image" and d["Enabled"]}
    # The topics the node publishes by default (its parameter table is the single source of them).
    from emotion_recognition_ros.ros.emotion_node import PARAMETERS

    assert shown == {PARAMETERS["annotated_topic"].default, PARAMETERS["heatmap_topic"].default}
