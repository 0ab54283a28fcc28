"""The DDS transport default for camera-sized messages, in one place for the Python entry points.

Fast DDS's default UDP transport drops most 640x480 frames for best-effort readers; LARGE_DATA (shared memory
plus TCP for data) drops none. scripts/run and the launch files set the same default in their own languages.
"""
from __future__ import annotations

import os
from typing import MutableMapping

FASTDDS_TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
DEFAULT_TRANSPORTS = "LARGE_DATA"


def default_to_large_data(env: MutableMapping[str, str] = os.environ) -> str:
    """Set LARGE_DATA unless the user chose transports; call before rclpy starts. Returns the value in use."""
    return env.setdefault(FASTDDS_TRANSPORTS_VARIABLE, DEFAULT_TRANSPORTS)
