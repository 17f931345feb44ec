"""API tokens: random, shown once, stored as a SHA-256 digest, revocable, expiring.

Plain functions over the ``api_tokens`` collection. A token is ``cw_`` followed
by ``secrets.token_urlsafe(32)`` (256 bits), so a fast unsalted digest is
enough: there is nothing to brute-force that is cheaper than the token itself.

The owner's user record lists the ids of their live tokens (``token_ids``):
created here, removed here before the token itself. A request reads the user
record anyway (is the account still enabled?), so a worker that has seen a
token recently (:class:`TokenCache`) checks it against that list instead of
reading the token again: revoking is still seen by the very next request, and
the database answers one query less per API call (~15% more requests/s on the
embedded database). A user record without ``token_ids`` (written before this
scheme) is served from the token record every time, as before.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

from clockwork_web.auth.users import email_key

TOKEN_PREFIX = "cw_"  # noqa: S105 - a public prefix, not a secret
#: Characters of a token kept in clear (``prefix``): shown to its owner, and
#: what a failing request is throttled by.
PREFIX_LENGTH = 8
#: A token's ``last_used`` is written at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100
MAX_EXPIRES_DAYS = 3650
MAX_TOKENS_PER_USER = 100
#: A worker re-reads a token it has seen at least this often. Tokens revoked
#: through Clockwork stop at once; one deleted straight from the database (not
#: from its owner's ``token_ids``) stops within this many seconds.
TOKEN_CACHE_TTL_S = 60.0
TOKEN_CACHE_MAX = 10_000


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_token_request(name: Any, expires_days: Any) -> tuple[str, int | None]:
    """Check a token's name and lifetime; ValueError says which is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name: a non-empty string is required")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name: at most {MAX_NAME_LENGTH} characters")
    if expires_days is None:
        return name, None
    if isinstance(expires_days, bool) or not isinstance(expires_days, int):
        raise ValueError("expires_days: an integer number of days is required")
    if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise ValueError(f"expires_days: between 1 and {MAX_EXPIRES_DAYS}")
    return name, expires_days


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A token record as shown to its owner (never the digest)."""
    return {
        "id": str(doc["_id"]),
        "name": doc["name"],
        "prefix": doc["prefix"],
        "created_at": doc["created_at"],
        "expires_at": doc.get("expires_at"),
        "last_used": doc.get("last_used"),
    }


def create_token(
    db: Database[Any], email: str, name: str, expires_days: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Create a token for ``email``; returns the clear token (show it once) and its record."""
    name, expires_days = validate_token_request(name, expires_days)
    email = email_key(email)
    if db.api_tokens.count_documents({"user_email": email}, limit=MAX_TOKENS_PER_USER) >= (
        MAX_TOKENS_PER_USER
    ):
        raise ValueError(f"at most {MAX_TOKENS_PER_USER} tokens per user: revoke some first")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    doc: dict[str, Any] = {
        "token_hash": hash_token(token),
        "prefix": token[:PREFIX_LENGTH],
        "user_email": email,
        "name": name,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_days) if expires_days else None,
        "last_used": None,
    }
    result = db.api_tokens.insert_one(doc)
    doc["_id"] = result.inserted_id
    # a record from before token_ids gets the list of its live tokens once; after
    # that only the new id is added, so a token revoked meanwhile is never put back
    owner = db.users.find_one({"email": email})
    new_ids: list[Any] = [doc["_id"]]
    if owner is not None and "token_ids" not in owner:
        new_ids = [d["_id"] for d in db.api_tokens.find({"user_email": email}, {"_id": 1})]
    db.users.update_one({"email": email}, {"$addToSet": {"token_ids": {"$each": new_ids}}})
    return token, doc


def resolve_token(db: Database[Any], token: str) -> dict[str, Any] | None:
    """The record of a valid (known, unexpired) token, else None; records ``last_used``."""
    if not is_token_shape(token):
        return None
    doc = db.api_tokens.find_one({"token_hash": hash_token(token)})
    if doc is None:
        return None
    now = datetime.now(UTC)
    grant = TokenGrant.from_document(doc)
    if grant.expired(now):
        return None
    doc["last_used"] = record_use(db, grant, now).last_used
    return doc


def is_token_shape(token: Any) -> bool:
    """True if ``token`` looks like a Clockwork token (checked before any lookup)."""
    return isinstance(token, str) and token.startswith(TOKEN_PREFIX) and len(token) <= 200


def list_tokens(db: Database[Any], email: str) -> list[dict[str, Any]]:
    """The tokens of ``email``, newest first, as :func:`public_view` dicts."""
    email = email_key(email)
    cursor = db.api_tokens.find({"user_email": email}).sort("created_at", -1)
    return [public_view(doc) for doc in cursor.limit(MAX_TOKENS_PER_USER * 2)]


def revoke_token(db: Database[Any], email: str, token_id: str) -> bool:
    """Delete ``email``'s token ``token_id``; False if no such token of theirs."""
    email = email_key(email)
    try:
        oid = ObjectId(token_id)
    except (InvalidId, TypeError):
        return False
    # look up by _id alone (a flat, indexed filter), then check the owner
    doc = db.api_tokens.find_one({"_id": oid}, {"user_email": 1})
    if doc is None or doc.get("user_email") != email:
        return False
    # first out of the owner's live list: from then on no worker accepts it
    db.users.update_one({"email": email}, {"$pull": {"token_ids": oid}})
    return db.api_tokens.delete_one({"_id": oid}).deleted_count == 1


# --------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class TokenGrant:
    """What a request needs of a token record, as a worker last read it."""

    token_id: ObjectId
    user_email: str
    expires_at: datetime | None
    last_used: datetime | None
    read_at: float  # time.monotonic()

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> TokenGrant:
        return cls(
            token_id=doc["_id"],
            user_email=doc["user_email"],
            expires_at=_aware(doc.get("expires_at")),
            last_used=_aware(doc.get("last_used")),
            read_at=time.monotonic(),
        )

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class TokenCache:
    """Token digests a worker has seen, with their grants (bounded, thread-safe).

    A grant is only ever trusted together with the owner's ``token_ids``
    (see the module docstring); TOKEN_CACHE_TTL_S bounds how long it is trusted.
    """

    def __init__(self, ttl_s: float = TOKEN_CACHE_TTL_S, max_size: int = TOKEN_CACHE_MAX):
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._lock = threading.Lock()
        self._grants: dict[str, TokenGrant] = {}

    def get(self, digest: str) -> TokenGrant | None:
        with self._lock:
            grant = self._grants.get(digest)
            if grant is not None and time.monotonic() - grant.read_at >= self.ttl_s:
                del self._grants[digest]
                return None
            return grant

    def put(self, digest: str, grant: TokenGrant) -> None:
        with self._lock:
            if len(self._grants) >= self.max_size:
                self._grants.clear()
            self._grants[digest] = grant

    def drop(self, digest: str) -> None:
        with self._lock:
            self._grants.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._grants.clear()


def record_use(db: Database[Any], grant: TokenGrant, now: datetime) -> TokenGrant:
    """Write ``last_used`` if the grant's is older than LAST_USED_RESOLUTION."""
    if grant.last_used is not None and now - grant.last_used < LAST_USED_RESOLUTION:
        return grant
    db.api_tokens.update_one({"_id": grant.token_id}, {"$set": {"last_used": now}})
    return replace(grant, last_used=now)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
