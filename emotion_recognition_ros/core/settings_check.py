"""The one place a pipeline setting is refused, whether it comes from a parameter, a test or a script.

It sits above core/config.py (the table's ranges and choices) and the detector and device registries, which
themselves import config.py: keeping these checks out of config.py keeps that module a leaf.
"""
from __future__ import annotations

from typing import Any, Mapping

from .config import check_ranges


def check_values(values: Mapping[str, Any]) -> str | None:
    """The reason a set of pipeline settings is unusable, or None. Keys that are not settings are ignored."""
    if reason := check_ranges(values):
        return reason
    # Imported here, not at the top: both pull in torch and OpenCV (seconds), and light processes such as the bag
    # recorder import the node's parameter checks without ever checking a device or a detector.
    from .detection import available_detectors
    from .device import validate_device_spec

    if "device" in values and (reason := validate_device_spec(values["device"])):
        return reason
    if "detector" in values and values["detector"] not in available_detectors():
        return f"unknown detector '{values['detector']}' (available: {', '.join(available_detectors())})"
    return None
