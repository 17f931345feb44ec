"""Slow down repeated authentication failures of one (client address, claimed identity).

Counted in the database, so that every worker and host of a deployment shares
one count: the ``auth_failures`` collection holds one document per key,
``{_id, count, address, identity, expires_at}``, whose window opens at the
key's first failure and lasts ``window_s`` seconds. A failure is one atomic
``$inc`` of an open window, or (none open) the write of a new one; two first
failures racing may count as one, which only delays the throttle by one try.
A TTL index on ``expires_at`` (and a sweep when a window opens, for servers
without TTL monitors) removes what has expired.

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

#: Its TTL index is in :data:`clockwork_core.db.INDEXES` (made by ``init-db`` or
#: at the app's first request, as every other index).
COLLECTION = "auth_failures"
MAX_FIELD = 200


def failure_key(address: str, identity: str) -> str:
    """The ``_id`` of one key's document: a digest, so any claimed text fits."""
    raw = f"{address}\x00{identity}".encode("utf-8", "replace")
    return hashlib.sha256(raw).hexdigest()


class FailureLimiter:
    """Failure counter keyed by (address, identity), stored in MongoDB.

    A key's window opens at its first failure and lasts ``window_s``: ``limit``
    failures within that span throttle the key until the window ends (a window
    fixed to the clock would let a key fail twice the limit across a boundary).
    """

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
        at = datetime.fromtimestamp(now, UTC)
        key = failure_key(address, identity)
        collection = db[COLLECTION]
        # by _id alone (planned on its index); an expired window is replaced below
        doc = collection.find_one_and_update(
            {"_id": key}, {"$inc": {"count": 1}}, return_document=ReturnDocument.AFTER
        )
        if doc is None or doc["expires_at"] <= at:  # no open window: this failure opens one
            doc = {
                "count": 1,
                "address": address[:MAX_FIELD],
                "identity": identity[:MAX_FIELD],
                "expires_at": datetime.fromtimestamp(now + self.window_s, UTC),
            }
            collection.replace_one({"_id": key}, doc, upsert=True)
            # sweep the expired ones (TTL monitors may be slow or absent)
            collection.delete_many({"expires_at": {"$lte": at}})
        if int(doc["count"]) <= self.limit:
            return 0
        return max(1, math.ceil(doc["expires_at"].timestamp() - now))

    def failures(self, db: Database[Any], address: str, identity: str) -> int:
        """Failures of ``(address, identity)`` in its open window (for tests and tools)."""
        at = datetime.fromtimestamp(self._clock(), UTC)
        doc = db[COLLECTION].find_one({"_id": failure_key(address, identity)})
        return int(doc["count"]) if doc and doc["expires_at"] > at else 0
