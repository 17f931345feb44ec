"""API tokens: random, shown once, stored as a SHA-256 digest, revocable, expiring.

Plain functions over the ``api_tokens`` collection. A token is ``cw_`` followed
by ``secrets.token_urlsafe(32)`` (256 bits), so a fast unsalted digest is
enough: there is nothing to brute-force that is cheaper than the token itself.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

TOKEN_PREFIX = "cw_"  # noqa: S105 - a public prefix, not a secret
#: A token's ``last_used`` is written at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100
MAX_EXPIRES_DAYS = 3650
MAX_TOKENS_PER_USER = 100


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
    if db.api_tokens.count_documents({"user_email": email}, limit=MAX_TOKENS_PER_USER) >= (
        MAX_TOKENS_PER_USER
    ):
        raise ValueError(f"at most {MAX_TOKENS_PER_USER} tokens per user: revoke some first")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    doc: dict[str, Any] = {
        "token_hash": hash_token(token),
        "prefix": token[:8],
        "user_email": email,
        "name": name,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_days) if expires_days else None,
        "last_used": None,
    }
    result = db.api_tokens.insert_one(doc)
    doc["_id"] = result.inserted_id
    return token, doc


def resolve_token(db: Database[Any], token: str) -> dict[str, Any] | None:
    """The record of a valid (known, unexpired) token, else None; records ``last_used``."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    doc = db.api_tokens.find_one({"token_hash": hash_token(token)})
    if doc is None:
        return None
    now = datetime.now(UTC)
    expires_at = _aware(doc.get("expires_at"))
    if expires_at is not None and expires_at <= now:
        return None
    last_used = _aware(doc.get("last_used"))
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        db.api_tokens.update_one({"_id": doc["_id"]}, {"$set": {"last_used": now}})
        doc["last_used"] = now
    return doc


def list_tokens(db: Database[Any], email: str) -> list[dict[str, Any]]:
    """The tokens of ``email``, newest first, as :func:`public_view` dicts."""
    cursor = db.api_tokens.find({"user_email": email}).sort("created_at", -1)
    return [public_view(doc) for doc in cursor.limit(MAX_TOKENS_PER_USER * 2)]


def revoke_token(db: Database[Any], email: str, token_id: str) -> bool:
    """Delete ``email``'s token ``token_id``; False if no such token of theirs."""
    try:
        oid = ObjectId(token_id)
    except (InvalidId, TypeError):
        return False
    # look up by _id alone (a flat, indexed filter), then check the owner
    doc = db.api_tokens.find_one({"_id": oid}, {"user_email": 1})
    if doc is None or doc.get("user_email") != email:
        return False
    return db.api_tokens.delete_one({"_id": oid}).deleted_count == 1


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
