"""Slow down repeated authentication failures from one address.

In-process, per worker: after ``limit`` failures within ``window_s`` seconds an
address is answered 429 (with Retry-After) until its oldest failure leaves the
window. Gunicorn runs a few workers, so an address gets at most
``workers x limit`` tries per window; that is enough to make guessing a
256-bit token or replaying logins pointless, and costs no database write.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """Sliding-window failure counter keyed by address."""

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def record(self, key: str) -> None:
        """Count one failure for ``key``."""
        now = self._clock()
        with self._lock:
            times = self._prune(key, now)
            if times is None:
                if len(self._failures) >= self._max_keys:
                    self._sweep(now)
                times = self._failures.setdefault(key, deque(maxlen=self.limit))
            times.append(now)

    def retry_after(self, key: str) -> int:
        """Seconds ``key`` must wait (0 when it may try now)."""
        now = self._clock()
        with self._lock:
            times = self._prune(key, now)
            if times is None or len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[0] + self.window_s - now))

    def _sweep(self, now: float) -> None:
        for key in list(self._failures):
            self._prune(key, now)
