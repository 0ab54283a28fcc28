"""The layering the README draws: core/ imports no ROS, and neither core/ nor ros/ imports tools/.

Read from the source with `ast`, so an import inside a function (where a lazy import would hide) counts too.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "emotion_recognition_ros"
ROS_MODULES = {"rclpy", "rcl_interfaces", "rosidl_runtime_py", "rosidl_parser", "builtin_interfaces", "launch",
               "launch_ros", "message_filters", "cv_bridge"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved against its package)."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_MODULES or top.endswith("_msgs") or top.endswith("_srvs")


def offences(folder: str, forbidden) -> list[str]:
    return [f"{path.relative_to(REPO)} imports {module}"
            for path in sorted((PACKAGE / folder).rglob("*.py"))
            for module in sorted(imported_modules(path)) if forbidden(module)]


def imports_tools(module: str) -> bool:
    return module == "emotion_recognition_ros.tools" or module.startswith("emotion_recognition_ros.tools.")


def test_core_imports_no_ros():
    assert offences("core", is_ros) == []


@pytest.mark.parametrize("folder", ["core", "ros"])
def test_core_and_ros_import_no_tools(folder):
    assert offences(folder, imports_tools) == []


def test_the_checks_see_relative_lazy_and_message_imports():
    """The scanner must be able to fail: a planted module with each kind of import is caught."""
    planted = PACKAGE / "core" / "detection" / "_planted_for_test.py"
    planted.write_text("def f():\n    from ...tools.demo import main\n    import rclpy\n"
                       "    from sensor_msgs.msg import Image\n")
    try:
        modules = imported_modules(planted)
        assert "emotion_recognition_ros.tools.demo" in modules
        assert any(is_ros(m) for m in modules if m.startswith("rclpy"))
        assert any(is_ros(m) for m in modules if m.startswith("sensor_msgs"))
        assert len(offences("core", is_ros)) >= 2 and len(offences("core", imports_tools)) >= 1
    finally:
        planted.unlink()


def test_running_the_core_loads_no_rclpy():
    code = ("import sys; import emotion_recognition_ros.core.pipeline, emotion_recognition_ros.core.explain; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'emotion_msgs')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_documented_parameter_table_is_the_declared_one():
    """docs/node.md lists exactly the parameters the node declares from its specs, in their order."""
    import re

    from emotion_recognition_ros.ros.params import EMOTION_NODE_PARAMETERS

    text = (REPO / "docs" / "node.md").read_text()
    table = text[text.index("| name | type | default | range | run time | meaning |"):]
    table = table[: table.index("\n\n")]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert documented == list(EMOTION_NODE_PARAMETERS)
