"""Where the datasets are: one lookup for the node, tests, benchmarks and training (imports no ROS).

A dataset folder comes from, in order: an explicit path (a command-line argument), the environment
variable EMOTION_DATA_DIR (the folder that holds `ckplus48/`, `ferplus/`, `photos/`), or `../shared/data`
from the working directory (a checkout's root, where `make` and `scripts/run` run; scripts/run also
exports EMOTION_DATA_DIR for its checkout). Never a path relative to the installed package.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EMOTION_DATA_DIR"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"


def data_dir() -> Path:
    """The folder holding the datasets: $EMOTION_DATA_DIR, else ../shared/data from the working directory."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else Path.cwd() / DEFAULT_DATA_DIR


def dataset_path(name: str, explicit: str | os.PathLike | None = None) -> Path:
    """Folder of dataset `name` (e.g. "ckplus48", "ferplus"): `explicit` if given, else data_dir() / name."""
    return Path(explicit).expanduser() if explicit else data_dir() / name


def missing_reason(name: str, explicit: str | os.PathLike | None = None) -> str | None:
    """None when dataset `name` is there, else one line naming it, where it was looked for and how to point at it."""
    path = dataset_path(name, explicit)
    if path.is_dir():
        return None
    return f"dataset {name} not found at {path} (set {ENV_VAR} to the folder holding {name}/, default ../shared/data)"
