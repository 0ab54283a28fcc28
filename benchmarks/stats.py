"""Small statistics and process-resource helpers (Linux /proc; no psutil needed)."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def summarize_ms(seconds: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p95/mean/max in milliseconds of a list of durations in seconds (None when empty)."""
    values = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    if values.size == 0:
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None}
    return {"n": int(values.size), "p50": round(float(np.percentile(values, 50)), 3),
            "p95": round(float(np.percentile(values, 95)), 3), "mean": round(float(values.mean()), 3),
            "max": round(float(values.max()), 3)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a launcher may start the node as a child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS = VmHWM) of one process, bytes."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


@dataclass
class ResourceSample:
    t: float  # seconds since the monitor started
    cpu_s: float  # cumulative CPU seconds of the process tree
    rss: int  # bytes, summed over the tree


@dataclass
class ProcessMonitor:
    """Samples CPU time and RSS of a process tree in a background thread.

    `window()` gives CPU use (in cores: 1.0 = one core busy) and RSS over a stretch of time, so warm-up
    and model loading can be left out of the figures.
    """

    pid: int
    interval: float = 0.25
    samples: list[ResourceSample] = field(default_factory=list)
    peak_rss: int = 0  # max over samples and the kernel's own high-water mark (VmHWM)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="proc-monitor", daemon=True)

    def start(self) -> "ProcessMonitor":
        self._t0 = time.monotonic()
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.sample()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sample(self) -> ResourceSample | None:
        cpu = 0.0
        rss = 0
        for p in process_tree(self.pid):
            try:
                cpu += cpu_seconds(p)
                r, hwm = rss_bytes(p)
            except (OSError, IndexError, ValueError):
                continue  # the process ended between listing and reading
            rss += r
            self.peak_rss = max(self.peak_rss, hwm if p == self.pid else 0)
        if rss == 0:
            return None
        self.peak_rss = max(self.peak_rss, rss)
        s = ResourceSample(self.now(), cpu, rss)
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def window(self, start: float, end: float | None = None) -> dict[str, float | None]:
        """CPU cores used and RSS (MiB) between two monitor times (see `now()`)."""
        inside = [s for s in self.samples if s.t >= start and (end is None or s.t <= end)]
        if len(inside) < 2:
            return {"cpu_cores": None, "rss_mib": None, "rss_max_mib": None}
        a, b = inside[0], inside[-1]
        span = b.t - a.t
        return {"cpu_cores": round((b.cpu_s - a.cpu_s) / span, 3) if span > 0 else None,
                "rss_mib": round(b.rss / 2**20, 1),
                "rss_max_mib": round(max(s.rss for s in inside) / 2**20, 1)}


def fit_slope(ts: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope dy/dt (None with fewer than 3 points)."""
    if len(ts) < 3:
        return None
    return float(np.polyfit(np.asarray(ts, float), np.asarray(ys, float), 1)[0])
