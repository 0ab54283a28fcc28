"""One line that says why an expected DDS peer has not matched: which topic, which side is missing, and the
likely cause, so a stall is diagnosed within seconds instead of waited out (issue 28).

What a process can see: its own endpoint's *matched* count (publisher.get_subscription_count(),
subscription.get_publisher_count()), and the ROS graph: the endpoints and nodes its participant has
*discovered*. The two tell the causes apart:
- nothing discovered at all (no other node): the peer is not running, or is in another ROS_DOMAIN_ID or
  ROS_AUTOMATIC_DISCOVERY_RANGE, or its transports share nothing with ours;
- other nodes discovered, but none with this topic: the topic name or namespace differs;
- some peers on the topic, all matched, fewer than wanted: the missing one was never discovered (the causes
  of the first case);
- the peer's endpoint discovered but not matched: incompatible QoS (named when rclpy can tell), else the DDS
  transports differ between the processes (e.g. one on LARGE_DATA, one on the package's profile), or Fast
  DDS's endpoint matching stalled.
"""
from __future__ import annotations

import os

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from .transport import describe

DIAGNOSE_AFTER_S = 5.0  # a healthy start on this 2-core machine matched within 2-3 s (benchmarks/dds_stress.py)


def environment() -> str:
    """This process's discovery settings, as the diagnosis quotes them."""
    return (f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}, ROS_AUTOMATIC_DISCOVERY_RANGE="
            f"{os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET (default)')}, transports: {describe()}")


def _others(node: Node) -> list[str]:
    me = node.get_fully_qualified_name()
    names = [(ns.rstrip("/") + "/" + name) for name, ns in node.get_node_names_and_namespaces()]
    return sorted({n for n in names if n != me and not n.endswith("/_ros2cli_daemon") and "_ros2cli" not in n})


def _incompatible(pub, sub) -> str:
    """The request/offer mismatch that stops a match, checked on reliability and durability only: the graph's
    copy of a peer's deadline and liveliness reads as unset, and rclpy's qos_check_compatible then reports
    errors that are not there (seen in benchmarks/dds_stress.py)."""
    if pub.reliability == ReliabilityPolicy.BEST_EFFORT and sub.reliability == ReliabilityPolicy.RELIABLE:
        return "a best-effort publisher and a reliable subscription"
    if pub.durability == DurabilityPolicy.VOLATILE and sub.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        return "a volatile publisher and a transient-local subscription"
    return ""


def diagnose(node: Node, topic: str, side: str, wanted: int, matched: int, own_qos=None,
             waited_s: float | None = None) -> str:
    """One line: `topic` has `matched` of `wanted` matched peers on the other side (`side` = 'subscriber' when
    this node publishes `topic`, 'publisher' when it subscribes) after `waited_s` seconds of waiting (said when
    given), and why that is likely."""
    name = node.resolve_topic_name(topic)
    infos = (node.get_subscriptions_info_by_topic(name) if side == "subscriber"
             else node.get_publishers_info_by_topic(name))
    me = node.get_name()
    found = [i for i in infos if i.node_name != me]
    head = f"{name}: {matched} of {wanted} {side}(s) matched" + (f" after {waited_s:.0f} s" if waited_s else "")
    if found:
        peers = ", ".join(sorted({i.node_name for i in found}))
        bad_qos = []
        if own_qos is not None:
            for info in found:
                pub, sub = (own_qos, info.qos_profile) if side == "subscriber" else (info.qos_profile, own_qos)
                if reason := _incompatible(pub, sub):
                    bad_qos.append(f"{info.node_name}: {reason}")
        if bad_qos:
            return f"{head}; discovered {peers} but the QoS is incompatible ({'; '.join(bad_qos)})"
        if len(found) <= matched:  # every peer seen is matched: the missing one was never discovered
            return (f"{head}; only {peers} on it so far, and matched: the missing {side} is not running (or still "
                    f"starting), or has another ROS_DOMAIN_ID or discovery range, or transports that share nothing "
                    f"with ours ({environment()}), or its discovery stalled (restart it)")
        return (f"{head}; discovered {peers} on it, not all matched: the DDS transports probably differ "
                f"between the processes (set the same in each; ours: {describe()}), or Fast DDS's endpoint "
                f"matching stalled (restart the later process)")
    others = _others(node)
    if others:
        return (f"{head}; other nodes are up ({', '.join(others[:5])}) but no {side} on {name}: check the topic "
                f"name and namespace (remap) of the missing side")
    return (f"{head}; no other node discovered at all: the missing side is not running, or has another "
            f"ROS_DOMAIN_ID or discovery range, or transports that share nothing with ours ({environment()})")
