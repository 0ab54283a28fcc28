"""Shared fixtures: every test run gets its own ROS domain, so parallel runs never cross-talk."""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
# Datasets: $EMOTION_DATA_DIR, else ../shared/data beside this checkout (not the working directory's).
os.environ.setdefault("EMOTION_DATA_DIR", str(REPO.parent / "shared" / "data"))

from emotion_recognition_ros.core.data_paths import dataset_path, missing_reason  # noqa: E402  (after the default)
from emotion_recognition_ros.ros.transport import apply_default_transport  # noqa: E402

CKPLUS = dataset_path("ckplus48")
PHOTOS = dataset_path("photos")


def _isolated_domain_id() -> str:
    # 0 is everyone's default; spread runs over 1..200 by process id (232 is the Fast DDS maximum).
    return str(1 + os.getpid() % 200)


# Set before any test imports rclpy, so every node in this run (and every child process it starts,
# which inherits the environment) lives in the same private domain.
os.environ.setdefault("ROS_DOMAIN_ID", _isolated_domain_id())
apply_default_transport()  # camera-sized frames over Fast DDS, the package's default (ros/transport.py)
# ROS_AUTOMATIC_DISCOVERY_RANGE is left at the ROS default: with LOCALHOST, rmw_fastrtps replaces the builtin
# transports by UDP on 127.0.0.1, and a node in another process then loses every camera frame
# (docs/node.md, DDS transport). The private domain id above already keeps runs apart.


# After pytest.ini's per-test timeout: a hang in C that its signal cannot interrupt ends the run with every
# thread's stack (naming the test) instead of at the CI limit, 25 minutes later.
NATIVE_HANG_BACKSTOP_S = 660


@pytest.fixture(autouse=True)
def _bounded_and_collected(request):
    """Bound every test, and free what it left for the garbage collector here, at its end.

    An rclpy node or context a test dropped is otherwise finalised by whichever allocation next runs the
    collector, in some later test (a fresh-clone run hung in model loading that way, in Fast DDS's TCP teardown:
    issue 28). Collecting here makes that teardown happen inside the test that caused it, under its timeout."""
    import faulthandler

    faulthandler.dump_traceback_later(NATIVE_HANG_BACKSTOP_S, exit=True)
    try:
        yield
        if "rclpy" in sys.modules:
            gc.collect()
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test; afterwards its nodes are destroyed, then it is shut down and
    destroyed, in that order (the garbage collector is never left to do it at a random moment)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()  # destroys the nodes it tracks first (rclpy Context._cleanup)
    context.destroy()


@pytest.fixture
def executor(ros_context):
    """A single-threaded executor bound to the test's context; nodes added to it are destroyed after."""
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ros_context)
    yield ex
    for node in list(ex.get_nodes()):
        ex.remove_node(node)
        node.destroy_node()
    ex.shutdown()


def spin_until(executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """ros/spin.py's spin_until, imported when first used (rclpy only after the transport default above)."""
    from emotion_recognition_ros.ros.spin import spin_until as spin

    return spin(executor, predicate, timeout)


@pytest.fixture(scope="session")
def single_threaded() -> None:
    """torch/OpenCV pinned to one thread (the machine has two cores, shared)."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@pytest.fixture(scope="session")
def labelled_faces(single_threaded):
    """The six-class CK+48 faces with their real labels (skips the test without the dataset)."""
    from emotion_recognition_ros.media.scenes import load_faces

    require_shared_data()
    return load_faces(CKPLUS)


@pytest.fixture(scope="session")
def faces(single_threaded):
    """Faces for tests that need *a* face: CK+48's where ../shared has them, else stand-ins cut from
    scikit-image's astronaut (test/astronaut_faces.py; their labels are made up)."""
    from emotion_recognition_ros.media.scenes import load_faces

    if missing_reason("ckplus48"):
        from astronaut_faces import astronaut_faces

        return astronaut_faces()
    return load_faces(CKPLUS)


def test_photos() -> list:
    """Real photos with faces (BGR): ../shared/data/photos where it exists, else scikit-image's astronaut (a real
    photo of one face, installed with the dependencies)."""
    import cv2

    if PHOTOS.is_dir():
        photos = [cv2.imread(str(p)) for p in sorted(PHOTOS.glob("*.jpg"))]
        assert photos and all(p is not None for p in photos), f"unreadable photos in {PHOTOS}"
        return photos
    from skimage import data

    return [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]


test_photos.__test__ = False  # a helper, not a test


def require_dataset(name: str = "ckplus48") -> None:
    """Skip the test, with one line naming the data, when dataset `name` is not there (a fresh clone)."""
    reason = missing_reason(name)
    if reason:
        pytest.skip(reason)


def require_shared_data() -> None:
    require_dataset("ckplus48")
