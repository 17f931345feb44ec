"""A small thread-safe memory of per-process guesses, emptied when it grows too big.

The listings remember, per query shape, where their last page ended (a window
width, a node name), so that the next one reads just its page. Losing an entry
costs a query, never a wrong answer, so the memory is simply cleared at its size
limit rather than evicted entry by entry.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """key -> value, at most ``max_size`` entries (then cleared)."""

    def __init__(self, max_size: int = 5000) -> None:
        self.max_size = max_size
        self._lock = threading.Lock()
        self._values: dict[str, V] = {}

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: str, value: V) -> None:
        with self._lock:
            if len(self._values) > self.max_size:
                self._values.clear()
            self._values[key] = value
