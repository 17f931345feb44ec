"""Totals next to listings: slow counts are cached, then renewed off the request path."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_web.jobs import service


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> service._CountCache:
    """A fresh cache in which every count counts as slow."""
    cache = service._CountCache()
    monkeypatch.setattr(service, "_counts", cache)
    monkeypatch.setattr(service, "SLOW_COUNT_S", -1.0)
    return cache


def _expire(cache: service._CountCache) -> None:
    """Age every entry past its expiry (but not past its stale limit)."""
    with cache._lock:
        for key, (_, value, stale_until) in list(cache._values.items()):
            cache._values[key] = (time.monotonic() - 1, value, stale_until)


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_expired_slow_count_is_served_stale_and_renewed_in_the_background(
    db: Database[Any], counts: service._CountCache
) -> None:
    db.things.insert_many([{"n": i} for i in range(3)])
    assert service.cached_count(db, "things", {}) == 3
    db.things.insert_many([{"n": i} for i in range(3, 5)])
    assert service.cached_count(db, "things", {}) == 3  # fresh: cached

    _expire(counts)
    threads_before = threading.active_count()
    # the expired value comes back at once; one renewal starts
    assert service.cached_count(db, "things", {}) == 3
    _wait_for(lambda: counts.get(f"{db.name}.things:[]") == (5, False))
    assert service.cached_count(db, "things", {}) == 5
    _wait_for(lambda: threading.active_count() <= threads_before)


def test_only_one_caller_renews_an_expired_count(
    db: Database[Any], counts: service._CountCache
) -> None:
    db.things.insert_one({"n": 1})
    service.cached_count(db, "things", {"n": 1})
    _expire(counts)
    key = f"{db.name}.things:[('n', 1)]"
    with counts._lock:
        counts._refreshing.add(key)  # a renewal is under way
    assert counts.get(key) == (1, False)


def test_a_failed_renewal_keeps_the_old_value_and_lets_the_next_caller_retry(
    db: Database[Any], counts: service._CountCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.things.insert_one({"n": 1})
    assert service.cached_count(db, "things", {"n": 1}) == 1
    _expire(counts)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "_count_and_cache", broken)
    key = f"{db.name}.things:[('n', 1)]"
    assert service.cached_count(db, "things", {"n": 1}) == 1
    _wait_for(lambda: key not in counts._refreshing)
    assert counts.get(key) == (1, True)  # the next caller renews


def test_a_count_past_its_stale_limit_is_counted_again_in_the_request(
    db: Database[Any], counts: service._CountCache
) -> None:
    db.things.insert_one({"n": 1})
    assert service.cached_count(db, "things", {}) == 1
    db.things.insert_one({"n": 2})
    with counts._lock:
        for key, (_, value, _) in list(counts._values.items()):
            counts._values[key] = (time.monotonic() - 2, value, time.monotonic() - 1)
    assert service.cached_count(db, "things", {}) == 2
