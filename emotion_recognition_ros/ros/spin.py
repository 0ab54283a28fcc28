"""The main loop of a node that finishes on its own (`node.done`): the image source, the bag recorder."""
from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException


def spin_until_done(program: str, make_node: Callable[[], object], errors: tuple[type[BaseException], ...]) -> int:
    """Build the node and spin it until it is done or stopped; `errors` become one line and exit status 2.
    Expects rclpy to be initialised; shuts it down."""
    node = None
    try:
        node = make_node()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except errors as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C or `ros2 launch` stopping us: finish cleanly (a bag gets its metadata)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
