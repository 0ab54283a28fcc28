"""The DDS transport default for camera-sized messages, in one place for every entry point.

Fast DDS's default transports lose most 640x480 frames for best-effort readers (its 512 KiB shared-memory
segment is smaller than one frame, so frames go as UDP fragments). The package therefore gives Fast DDS its own
profile, config/fastdds_large_data.xml: shared memory with a 16 MiB segment, plus UDP for discovery and other
hosts, and no TCP. Not LARGE_DATA (shared memory + TCP): its TCP side stalled discovery now and then and
deadlocked in Fast DDS 3.2.2's TCP transport destructor on teardown (figures: docs/reliability.md, issue 28).

scripts/run sets the same default in shell; the nodes (ros/spin.py init_with_signals), the demo, the tests'
conftest and the launch files call the functions below. A user's own choice (FASTDDS_BUILTIN_TRANSPORTS or
FASTDDS_DEFAULT_PROFILES_FILE already set) always wins.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, MutableMapping

TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds_large_data.xml"
PACKAGE = "emotion_recognition_ros"


def profile_path() -> Path:
    """config/fastdds_large_data.xml: the source checkout's (also what a --symlink-install runs), else the
    installed package's share folder."""
    here = Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME
    if here.is_file():
        return here
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "config" / PROFILE_NAME


def user_choice(env: Mapping[str, str] = os.environ) -> str | None:
    """The transport setting the user made, or None."""
    if env.get(PROFILE_VARIABLE):
        return f"{PROFILE_VARIABLE}={env[PROFILE_VARIABLE]}"
    if env.get(TRANSPORTS_VARIABLE):
        return f"{TRANSPORTS_VARIABLE}={env[TRANSPORTS_VARIABLE]}"
    return None


def default_transport_env(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables to add to `env` for the package's transports: none when the user chose their own.

    For launch files: `[SetEnvironmentVariable(k, v) for k, v in default_transport_env().items()]`."""
    return {} if user_choice(env) else {PROFILE_VARIABLE: str(profile_path())}


def apply_default_transport(env: MutableMapping[str, str] = os.environ) -> str:
    """Set the package's transports in `env` unless the user chose; call before rclpy starts a participant
    (Fast DDS reads the profile when the first one is created). Returns the setting in use, as one phrase."""
    env.update(default_transport_env(env))
    return describe(env)


def describe(env: Mapping[str, str] = os.environ) -> str:
    """The transport setting of `env` in words (what a diagnosis compares between processes)."""
    choice = user_choice(env)
    if choice is None:
        return "Fast DDS defaults (UDP + 512 KiB shared memory)"
    if env.get(PROFILE_VARIABLE) and Path(env[PROFILE_VARIABLE]).name == PROFILE_NAME:
        return f"the package's profile {PROFILE_NAME} (shared memory + UDP)"
    return choice
