"""Slow down repeated authentication failures of one (client address, claimed identity).

Counted in the database, so that every worker and host of a deployment shares
one count: the ``auth_failures`` collection holds one document per key and
fixed window of ``window_s`` seconds, ``{_id, count, address, identity,
expires_at}``. A failure is one atomic upsert by ``_id``; a TTL index on
``expires_at`` (and a sweep when a window opens, for servers without TTL
monitors) removes what has expired.

Only failures touch the collection. A request whose credential is valid is
never counted, never read against the limit and never refused because of it:
throttling turns the answers to *failing* attempts of a key into 429 (with
Retry-After) once it failed ``limit`` times in the window. Clockwork holds no
passwords: its API tokens carry 256 random bits and logins are checked by the
identity provider, so the limiter is there to slow noisy or hostile clients and
to make them visible, not to protect a guessable secret.

The key is the client address together with what the request claims to be
(an email, a token's public prefix), so that a failing script never locks out
the other people behind the same address. Behind a reverse proxy the address
is the real client's only when ``web.trusted_proxy_hops`` says how many
proxies to trust (see ``docs/operators/reverse-proxy.md``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

#: Its TTL index is in :data:`clockwork_core.db.INDEXES` (made by ``init-db`` or
#: at the app's first request, as every other index).
COLLECTION = "auth_failures"
MAX_FIELD = 200


def failure_key(address: str, identity: str, window: int) -> str:
    """The ``_id`` of one key's window: a digest, so any claimed text fits."""
    raw = f"{address}\x00{identity}\x00{window}".encode("utf-8", "replace")
    return hashlib.sha256(raw).hexdigest()


class FailureLimiter:
    """Fixed-window failure counter keyed by (address, identity), stored in MongoDB."""

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock

    def record(self, db: Database[Any], address: str, identity: str) -> int:
        """Count one failure of ``(address, identity)``.

        Returns the seconds the key must wait (0 while it is within the limit):
        the caller answers 429 with that Retry-After instead of its usual error.
        """
        now = self._clock()
        window = int(now // self.window_s)
        window_end = (window + 1) * self.window_s
        key = failure_key(address, identity, window)
        update = {
            "$inc": {"count": 1},
            "$setOnInsert": {
                "address": address[:MAX_FIELD],
                "identity": identity[:MAX_FIELD],
                "expires_at": datetime.fromtimestamp(window_end, UTC),
            },
        }
        collection = db[COLLECTION]
        try:
            doc = collection.find_one_and_update(
                {"_id": key}, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:  # two first failures raced to insert: count again
            doc = collection.find_one_and_update(
                {"_id": key}, update, return_document=ReturnDocument.AFTER
            )
        count = int(doc["count"]) if doc else 1
        if count == 1:
            # a window opened: sweep the expired ones (TTL monitors may be slow or absent)
            collection.delete_many({"expires_at": {"$lte": datetime.fromtimestamp(now, UTC)}})
        if count <= self.limit:
            return 0
        return max(1, math.ceil(window_end - now))

    def failures(self, db: Database[Any], address: str, identity: str) -> int:
        """Failures of ``(address, identity)`` in the current window (for tests and tools)."""
        window = int(self._clock() // self.window_s)
        doc = db[COLLECTION].find_one({"_id": failure_key(address, identity, window)})
        return int(doc["count"]) if doc else 0
