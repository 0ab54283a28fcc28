"""How this package's programs start and stop ROS: signals that always stop them, a teardown that cannot hang,
and the main loop of a node that finishes on its own (`node.done`: the image source, the bag recorder)."""
from __future__ import annotations

import faulthandler
import gc
import os
import signal
import sys
import threading
import time
from typing import Callable, NoReturn

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions

from .transport import apply_default_transport

# Fast DDS's teardown once hung forever after the node's own work was done (LARGE_DATA's TCP transport
# destructor, docs/reliability.md; the default profile has no TCP now): once the node is destroyed, give it
# this long, so that whatever DDS does, the process ends.
TEARDOWN_TIMEOUT_S = 3.0


def _arm_native_backstop(timeout: float) -> None:
    """A deadline that holds even when the main thread blocks in C *holding the GIL*: Fast DDS's TCP teardown
    deadlock did (issue 28), and then no Python thread runs, so threading.Timer watchdogs (and the signal
    handlers: SIGINT and SIGTERM were ignored, benchmarks/dds_stress.py 2026-12-06) never fire. faulthandler's
    watchdog is a C thread: it prints every thread's stack (where it hung) and calls _exit(1) itself."""
    try:
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.__stderr__)
    except (AttributeError, ValueError, OSError):  # no real stderr (captured, closed): the Python timers remain
        pass


# Called just before a forced exit (second signal, grace over): a program that started processes ends them here.
_before_exit: list[Callable[[], None]] = []


def _exit_now(code: int, why: str) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {why}, exiting", file=sys.stderr, flush=True)
    for hook in _before_exit:
        hook()
    os._exit(code)


# One Ctrl-C on `ros2 launch` arrives twice: the terminal signals the whole process group, and launch then
# forwards SIGINT to each process it started. A second signal this soon after the first is that echo, not a
# user insisting (in benchmarks/dds_stress.py's launch mode, 2 of 100 recorders took the echo as "second signal,
# exiting" and left their bag unclosed, 2026-12-06).
ECHO_S = 1.0


def _interrupt_within(grace_s: float):
    def interrupt(signum, frame) -> None:
        # A second signal while we finish (closing a bag, tearing down DDS) ends the process at once, and so
        # does a finish that takes longer than grace_s (worker threads busy on a loaded machine: the emotion node
        # once took 43 s at load 12 on 2 cores).
        first = time.monotonic()

        def again(_sig, _frame) -> None:
            if time.monotonic() - first >= ECHO_S:
                _exit_now(128 + signum, "second signal")

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, again)
        watchdog = threading.Timer(grace_s, _exit_now, (128 + signum, f"still finishing {grace_s:g} s after the signal"))
        watchdog.daemon = True
        watchdog.start()
        _arm_native_backstop(grace_s + 5.0)  # if the finish blocks in C holding the GIL, the timer cannot run
        raise KeyboardInterrupt
    return interrupt


def stop_on_signals(grace_s: float = 10.0, before_exit: Callable[[], None] | None = None) -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread; a second one (ECHO_S or more after the
    first), or `grace_s` seconds without having finished, exits at once, after `before_exit` (e.g. killing the
    processes this one started).

    Set explicitly: a process started in the background by a shell (or by a `ros2 launch` that was) inherits an
    ignored SIGINT, and rclpy's own handler then only wakes executors, so the node ran on; `ros2 launch` and
    service managers stop nodes with SIGTERM, which by default skips every `finally` (and a bag's metadata)."""
    if before_exit is not None:
        _before_exit.append(before_exit)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt_within(grace_s))


def init_with_signals(args: list[str] | None = None, grace_s: float = 10.0) -> None:
    """rclpy.init with stop_on_signals() instead of rclpy's handlers: the node's code finishes (closes its bag)
    while its context still works. The package's DDS transports unless the user chose (ros/transport.py):
    `ros2 run` without scripts/run gets the same as the demo and the launch files."""
    apply_default_transport()
    stop_on_signals(grace_s)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def shutdown_with_deadline(code: int = 0, timeout: float = TEARDOWN_TIMEOUT_S) -> None:
    """rclpy.try_shutdown(), but if DDS's teardown has not returned after `timeout` seconds the process exits
    with `code` anyway: everything of ours (bags, files) is closed by then, only sockets remain."""
    watchdog = threading.Timer(timeout, _exit_now, (code, f"DDS teardown still running after {timeout:g} s"))
    watchdog.daemon = True
    watchdog.start()
    _arm_native_backstop(timeout + 2.0)
    try:
        rclpy.try_shutdown()
    finally:
        watchdog.cancel()
        faulthandler.cancel_dump_traceback_later()


def teardown_with_deadline(node=None, code: int = 0, timeout: float = TEARDOWN_TIMEOUT_S) -> None:
    """Finish `node`'s own work first (its `finish_work()`, if it has one: a bag's metadata, the worker threads;
    not bounded here, the signal's grace bounds it), then destroy it and shut rclpy down under one deadline.

    Destroying the node is where DDS tears the participant down (rmw_destroy_node -> delete_participant): with
    LARGE_DATA's TCP transport that deadlocked in Fast DDS 3.2.2 (bag_recorder: SIGINT and SIGTERM did nothing,
    benchmarks/dds_stress.py, 2026-12-06), and a hang in C cannot be interrupted, only outlived: after `timeout`
    seconds the process exits with `code`, everything of ours being closed by then."""
    finish = getattr(node, "finish_work", None)
    if callable(finish):
        finish()
    watchdog = threading.Timer(timeout, _exit_now, (code, f"DDS teardown still running after {timeout:g} s"))
    watchdog.daemon = True
    watchdog.start()
    _arm_native_backstop(timeout + 2.0)
    try:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    finally:
        watchdog.cancel()
        faulthandler.cancel_dump_traceback_later()


def exit_releasing_dds(code: int, timeout: float = TEARDOWN_TIMEOUT_S) -> NoReturn:
    """Leave with `code` without the interpreter's own teardown, but only after a garbage collection.

    rclpy's node and context handles sit in reference cycles, so only the collector frees them, and with them
    Fast DDS's participant: leaving with a bare os._exit left its shared-memory segment and port files in
    /dev/shm on every exit (measured: 5-8 files per emotion node run, none after a collection)."""
    watchdog = threading.Timer(timeout, _exit_now, (code, f"garbage collection still running after {timeout:g} s"))
    watchdog.daemon = True
    watchdog.start()
    _arm_native_backstop(timeout + 2.0)  # the collection runs DDS teardown too, holding the GIL
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def spin_until(executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin `executor` until `predicate()` is true or `timeout` seconds pass; returns the predicate (the tests'
    and the DDS benchmarks' one way to wait on DDS without a sleep that could hide a stall)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=min(max(deadline - time.monotonic(), 0.0), 0.05))
    return bool(predicate())


def spin_until_done(program: str, make_node: Callable[[], object], errors: tuple[type[BaseException], ...],
                    args: list[str] | None = None, grace_s: float = 10.0) -> int:
    """Start rclpy (init_with_signals), build the node and spin it until it is done or stopped; `errors`
    become one line and exit status 2. Destroys the node and shuts rclpy down (teardown_with_deadline)."""
    init_with_signals(args, grace_s)
    node, code = None, 0
    try:
        node = make_node()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except errors as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C or `ros2 launch` stopping us: finish cleanly (a bag gets its metadata)
    finally:
        teardown_with_deadline(node, code)
    return code
