"""A node in its own process, for the demo, the benchmarks and the tests: one helper, one way to stop it."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Mapping, Sequence


class NodeProcess:
    """A command (usually `python -m <node module>`) in its own process group, its output in a log file.

    The environment (ROS_DOMAIN_ID, discovery range, DDS transports) is inherited unless `env` is given, so
    both ends of a test match. Use as a context manager, or call `start()` and `stop()`.
    """

    started: "set[NodeProcess]" = set()  # every process started and not yet stopped, for kill_all

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env if env is not None else os.environ)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NodeProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        NodeProcess.started.add(self)
        return self

    __enter__ = start

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failed(self) -> bool:
        """Started and already exited (a node that is meant to keep serving)."""
        return self.proc is not None and self.proc.poll() is not None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def last_line(self) -> str:
        """The node's own one-line reason (`<node>: ...`) if it gave one, else its last line of output."""
        lines = [line for line in self.log_tail(200).splitlines() if line.strip()]
        reasons = [line for line in lines if line.split(":")[0].endswith("_node")]
        return (reasons or lines or [f"exit status {self.proc.returncode if self.proc else '?'}"])[-1]

    def stop(self, *_exc) -> None:
        """SIGINT first so rclpy shuts down cleanly, then SIGTERM, then SIGKILL, to the group we created."""
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            self._log.close()
        NodeProcess.started.discard(self)

    __exit__ = stop

    @classmethod
    def kill_all(cls) -> None:
        """SIGKILL to every process group started and not stopped (a program forced to exit leaves none behind)."""
        for process in list(cls.started):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cls.started.clear()
