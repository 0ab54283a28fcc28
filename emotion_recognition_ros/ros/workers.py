"""The node's two background threads and the hand-over between them, kept apart from ROS.

- `LatestSlot`: a one-item mailbox. Putting an item over an unread one replaces it (the caller counts that
  as a dropped frame), so a slow consumer never works through stale frames.
- `Worker`: a daemon thread that takes each item from a slot and hands it to a function, until stopped.
- `RateLimitedWorker`: the same, at most `rate_hz` items a second, always the newest one by then.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable


class LatestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store `item`; returns True when it replaced one nobody had taken."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """The newest item (waiting for one), or None once closed or after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def wait_closed(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when closed; returns whether it is closed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed, seconds)

    def take_newer(self, item: Any) -> Any:
        """`item`, or a newer one put meanwhile (taking it)."""
        with self._cond:
            newer, self._item = self._item, None
            return newer if newer is not None else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


def lower_this_threads_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by `nice` (Linux schedules threads one by one: a nice thread yields
    the CPU to its process's other threads when they compete for it). False where the OS does not allow it."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    except (AttributeError, OSError):  # not Linux / not permitted: the thread runs at the normal priority
        return False


class Worker:
    """Runs `handle(item)` for every item taken from `slot`, on its own thread, until the slot is closed;
    `nice` > 0 runs that thread at a lower priority than the rest of the process."""

    def __init__(self, slot: LatestSlot, handle: Callable[[Any], None], name: str, nice: int = 0):
        self.slot = slot
        self._handle = handle
        self._nice = nice
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _next(self) -> Any:
        return self.slot.take()

    def _loop(self) -> None:
        if self._nice:
            lower_this_threads_priority(self._nice)
        while not self.slot.closed:
            item = self._next()
            if item is not None:
                self._handle(item)

    def stop(self, timeout: float = 5.0) -> None:
        self.slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)


class RateLimitedWorker(Worker):
    """A Worker handling at most `rate()` items a second (0 = none), each time the newest item by then."""

    def __init__(self, slot: LatestSlot, handle: Callable[[Any], None], name: str, rate: Callable[[], float],
                 nice: int = 0):
        super().__init__(slot, handle, name, nice)
        self._rate = rate
        self._last = 0.0

    def _next(self) -> Any:
        item = self.slot.take()
        rate = self._rate()
        if item is None or rate <= 0:
            return None
        wait = self._last + 1.0 / rate - time.monotonic()
        if wait > 0:  # rate limit: wait (waking early on shutdown), then take whatever is newest by then
            if self.slot.wait_closed(wait):
                return None
            item = self.slot.take_newer(item)
        self._last = time.monotonic()
        return item
