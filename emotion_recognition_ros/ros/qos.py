"""The QoS of camera-image topics, built from the `reliability` and `qos_depth` parameters every node shares."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY_POLICIES = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
RELIABILITIES = tuple(RELIABILITY_POLICIES)  # the `reliability` parameter's choices


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last `depth`, volatile, with the named reliability (one of RELIABILITIES)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
                      reliability=RELIABILITY_POLICIES[reliability])
