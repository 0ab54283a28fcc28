"""The layering the README draws: core/ imports no ROS, neither core/ nor ros/ imports tools/, the runtime
(everything under emotion_recognition_ros/) imports neither the offline `training` package nor `benchmarks`,
and no module of either package takes part in an import cycle.

Read from the source with `ast`, so an import inside a function (where a lazy import would hide) or under
`if TYPE_CHECKING:` counts too.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

from conftest import REPO

PACKAGE = REPO / "emotion_recognition_ros"
ROS_MODULES = {"rclpy", "rcl_interfaces", "rosidl_runtime_py", "rosidl_parser", "builtin_interfaces", "launch",
               "launch_ros", "message_filters", "cv_bridge"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names taken from it) for every import statement in `path`, relative ones made absolute. Those
    inside functions and under `if TYPE_CHECKING:` count too: a cycle they close is still one tangle for a reader
    and one `TYPE_CHECKING` guard away from an ImportError."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            found.append((".".join(base + ([node.module] if node.module else [])), [a.name for a in node.names]))
    return found


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, and of every name it imports from one."""
    return {name for module, names in imports(path) for name in [module] + [f"{module}.{n}" for n in names]}


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_MODULES or top.endswith("_msgs") or top.endswith("_srvs")


def offences(folder: str, forbidden) -> list[str]:
    return [f"{path.relative_to(REPO)} imports {module}"
            for path in sorted((PACKAGE / folder).rglob("*.py"))
            for module in sorted(imported_modules(path)) if forbidden(module)]


def imports_tools(module: str) -> bool:
    return module == "emotion_recognition_ros.tools" or module.startswith("emotion_recognition_ros.tools.")


def imports_offline_code(module: str) -> bool:
    return module.split(".")[0] in ("training", "benchmarks")


def module_graph(packages: Sequence[str] = ("emotion_recognition_ros", "training")) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports (`from package import sub` counts as the submodule)."""
    paths = {module_name(path): path for package in packages for path in sorted((REPO / package).rglob("*.py"))}
    graph = {}
    for name, path in paths.items():
        targets = set()
        for module, names in imports(path):
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in paths]
            targets.update(subs if subs and len(subs) == len(names) else subs + [module])
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (sorted)."""
    reach = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo += graph.get(module, ())
        reach[start] = seen
    groups = {frozenset(m for m in reach[start] if start in reach[m]) for start in graph if start in reach[start]}
    return sorted(sorted(group) for group in groups)


def test_core_imports_no_ros():
    assert offences("core", is_ros) == []


@pytest.mark.parametrize("folder", ["core", "ros"])
def test_core_and_ros_import_no_tools(folder):
    assert offences(folder, imports_tools) == []


def test_training_imports_no_tools():
    """tools/ holds the package's CLIs; what training shares with them (plots, preprocessing) lives outside it."""
    found = [f"{path.relative_to(REPO)} imports {module}" for path in sorted((REPO / "training").rglob("*.py"))
             for module in sorted(imported_modules(path)) if imports_tools(module)]
    assert found == []


def test_the_runtime_imports_no_training_or_benchmarks():
    """The node, the demo and their tools run from an install that has neither offline package."""
    assert offences(".", imports_offline_code) == []


def test_no_import_cycles():
    assert import_cycles(module_graph()) == []


def test_the_checks_see_relative_lazy_and_message_imports():
    """The scanner must be able to fail: a planted module with each kind of import is caught."""
    planted = PACKAGE / "core" / "detection" / "_planted_for_test.py"
    planted.write_text("def f():\n    from ...tools.demo import main\n    import rclpy\n"
                       "    from sensor_msgs.msg import Image\n    from training.data import load_ferplus\n"
                       "    import benchmarks.bench\n")
    try:
        modules = imported_modules(planted)
        assert "emotion_recognition_ros.tools.demo" in modules
        assert any(is_ros(m) for m in modules if m.startswith("rclpy"))
        assert any(is_ros(m) for m in modules if m.startswith("sensor_msgs"))
        assert len(offences("core", is_ros)) >= 2 and len(offences("core", imports_tools)) >= 1
        assert {"emotion_recognition_ros/core/detection/_planted_for_test.py imports training.data",
                "emotion_recognition_ros/core/detection/_planted_for_test.py imports benchmarks.bench"
                } <= set(offences(".", imports_offline_code))
    finally:
        planted.unlink()


def cycles_with_planted_pair(way_back: str) -> list[list[str]]:
    """Import cycles of the tree with two planted training modules: _planted_a imports _planted_b at the top,
    _planted_b's source is `way_back`."""
    first, second = REPO / "training" / "_planted_a.py", REPO / "training" / "data" / "_planted_b.py"
    first.write_text("from .data import _planted_b\n")
    second.write_text(way_back)
    try:
        return import_cycles(module_graph())
    finally:
        first.unlink()
        second.unlink()


def test_the_cycle_check_sees_a_planted_cycle_through_a_lazy_relative_import():
    cycles = cycles_with_planted_pair("def f():\n    from .. import _planted_a\n")
    assert ["training._planted_a", "training.data._planted_b"] in cycles


def test_the_cycle_check_sees_a_planted_cycle_through_an_annotation_only_import():
    """The way back under `if TYPE_CHECKING:` counts: config.py and the detectors were such a loop."""
    cycles = cycles_with_planted_pair("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import _planted_a\n")
    assert ["training._planted_a", "training.data._planted_b"] in cycles


def test_the_settings_table_is_a_leaf():
    """core/config.py imports nothing of the package, so every module may import it."""
    own = [m for m, _ in imports(PACKAGE / "core" / "config.py") if m.startswith("emotion_recognition_ros")]
    assert own == []


def test_the_install_holds_only_the_runtime_package(tmp_path):
    """setup.py's own metadata: one top-level package, so no bare `training` goes onto a robot's path."""
    proc = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (egg_info,) = tmp_path.glob("*.egg-info")
    assert (egg_info / "top_level.txt").read_text().split() == ["emotion_recognition_ros"]


def test_training_runs_from_the_checkout_without_being_installed():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "training.train", "--help"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0 and "python -m training.train" in proc.stdout, proc.stdout + proc.stderr


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
