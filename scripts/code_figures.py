"""Code-shape figures for reviews: functions of 60+ lines, functions of 8+ arguments (self/cls not counted,
*args/**kwargs counted), and function-local imports per file. Reads the source with ast; runs nothing.

    python3 scripts/code_figures.py [FOLDER ...]   (default: emotion_recognition_ros training benchmarks)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

LONG_LINES, MANY_ARGS = 60, 8


def argument_count(f: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = f.args
    named = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(named) + (a.vararg is not None) + (a.kwarg is not None)


def main(roots: list[str]) -> None:
    long, many, local = [], [], {}
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            for f in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                lines = f.end_lineno - f.lineno + 1
                if lines >= LONG_LINES:
                    long.append(f"{path}:{f.lineno} {f.name} {lines} lines")
                if argument_count(f) >= MANY_ARGS:
                    many.append(f"{path}:{f.lineno} {f.name} {argument_count(f)} arguments")
                imports = sum(isinstance(g, (ast.Import, ast.ImportFrom)) for g in ast.walk(f))
                local[str(path)] = local.get(str(path), 0) + imports
    for title, rows in ((f"functions of {LONG_LINES}+ lines", long), (f"functions of {MANY_ARGS}+ arguments", many),
                        ("function-local import statements", [f"{p} {n}" for p, n in sorted(local.items()) if n])):
        total = sum(local.values()) if title.startswith("function-local") else len(rows)
        print(f"{title}: {total}", *(f"  {row}" for row in rows), sep="\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["emotion_recognition_ros", "training", "benchmarks"])
