"""API tokens: stored hashed, Bearer and Basic, expiry, revocation, rate limit."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import tokens, users
from clockwork_web.auth.ratelimit import FailureLimiter
from test_common.oidc import csrf_token_for, with_overrides


@pytest.fixture
def app(config: Config, db: Database[Any]) -> Flask:
    users.upsert_user(db, users.UserRow(email="alice@example.org"))
    users.upsert_user(db, users.UserRow(email="bob@example.org"))
    return create_app(config, {"TESTING": True})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(email: str, token: str) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{token}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_tokens_never_stored_in_clear(app: Flask, db: Database[Any]) -> None:
    token, _ = tokens.create_token(db, "alice@example.org", "laptop", expires_days=30)
    assert token.startswith("cw_") and len(token) >= 40
    client = app.test_client()
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=bearer(token))
    assert created.status_code == 201
    second = created.get_json()["token"]
    stored = list(db.api_tokens.find({}))
    assert len(stored) == 2
    dump = repr(stored)
    for clear in (token, second):
        assert clear not in dump
        assert clear[8:] not in dump  # not even the secret part
        assert tokens.hash_token(clear) in dump
    assert {d["prefix"] for d in stored} == {token[:8], second[:8]}


def test_bearer_and_basic(app: Flask, db: Database[Any]) -> None:
    token, _ = tokens.create_token(db, "alice@example.org", "laptop")
    client = app.test_client()
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200
    assert (
        client.get("/api/v1/tokens", headers=basic("alice@example.org", token)).status_code == 200
    )
    assert (
        client.get("/api/v1/tokens", headers=basic("ALICE@example.org", token)).status_code == 200
    )
    # Basic with someone else's email is refused
    wrong = client.get("/api/v1/tokens", headers=basic("bob@example.org", token))
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "unauthorized"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer cw_nope", "Basic !!!", "Token abc", f"Bearer {token}x"):
        answer = client.get("/api/v1/tokens", headers={"Authorization": header})
        assert answer.status_code == 401, header


def test_token_does_not_fall_back_to_session(app: Flask, db: Database[Any]) -> None:
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["user_email"] = "alice@example.org"
    assert client.get("/api/v1/tokens").status_code == 200
    assert client.get("/api/v1/tokens", headers=bearer("cw_invalid")).status_code == 401


def test_expired_and_revoked_refused(app: Flask, db: Database[Any]) -> None:
    expired, doc = tokens.create_token(db, "alice@example.org", "old", expires_days=1)
    db.api_tokens.update_one(
        {"_id": doc["_id"]}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    client = app.test_client()
    assert client.get("/api/v1/tokens", headers=bearer(expired)).status_code == 401

    token, doc = tokens.create_token(db, "alice@example.org", "laptop")
    other, _ = tokens.create_token(db, "alice@example.org", "ci")
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200
    # bob cannot revoke alice's token, nor see it
    bob, _ = tokens.create_token(db, "bob@example.org", "bob")
    assert client.delete(f"/api/v1/tokens/{doc['_id']}", headers=bearer(bob)).status_code == 404
    listed = client.get("/api/v1/tokens", headers=bearer(bob)).get_json()["tokens"]
    assert [t["name"] for t in listed] == ["bob"]
    # alice revokes it with another of her tokens
    assert client.delete(f"/api/v1/tokens/{doc['_id']}", headers=bearer(other)).status_code == 204
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 401
    assert client.delete(f"/api/v1/tokens/{doc['_id']}", headers=bearer(other)).status_code == 404
    assert client.delete("/api/v1/tokens/not-an-id", headers=bearer(other)).status_code == 404


def test_last_used_recorded_at_most_once_a_minute(app: Flask, db: Database[Any]) -> None:
    token, doc = tokens.create_token(db, "alice@example.org", "laptop")
    assert doc["last_used"] is None
    client = app.test_client()
    client.get("/api/v1/tokens", headers=bearer(token))
    first = db.api_tokens.find_one({"_id": doc["_id"]})["last_used"]
    assert first is not None
    client.get("/api/v1/tokens", headers=bearer(token))
    assert db.api_tokens.find_one({"_id": doc["_id"]})["last_used"] == first
    # five minutes later: the worker has re-read the token (TOKEN_CACHE_TTL_S)
    past = datetime.now(UTC) - timedelta(minutes=5)
    db.api_tokens.update_one({"_id": doc["_id"]}, {"$set": {"last_used": past}})
    app.extensions["clockwork_token_cache"].clear()
    listed = client.get("/api/v1/tokens", headers=bearer(token)).get_json()["tokens"]
    assert listed[0]["last_used"] is not None
    assert db.api_tokens.find_one({"_id": doc["_id"]})["last_used"] > past


def test_a_remembered_token_still_records_its_use_once_a_minute(
    app: Flask, db: Database[Any]
) -> None:
    token, doc = tokens.create_token(db, "alice@example.org", "laptop")
    client = app.test_client()
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200
    cache = app.extensions["clockwork_token_cache"]
    digest = tokens.hash_token(token)
    grant = cache.get(digest)
    assert grant is not None and grant.token_id == doc["_id"]
    # the worker wrote last_used two minutes ago (as far as it knows)
    past = datetime.now(UTC) - timedelta(minutes=2)
    cache.put(digest, replace(grant, last_used=past))
    db.api_tokens.update_one({"_id": doc["_id"]}, {"$set": {"last_used": past}})
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200
    assert db.api_tokens.find_one({"_id": doc["_id"]})["last_used"] > past
    assert cache.get(digest).last_used > past


def test_a_remembered_token_is_refused_once_revoked_expired_or_its_user_disabled(
    app: Flask, db: Database[Any]
) -> None:
    """Revoking, expiry, disabling: each refused on the very next request."""
    client = app.test_client()
    token, doc = tokens.create_token(db, "alice@example.org", "laptop", expires_days=1)
    other, _ = tokens.create_token(db, "alice@example.org", "ci")
    for t in (token, other):
        assert client.get("/api/v1/tokens", headers=bearer(t)).status_code == 200
    cache = app.extensions["clockwork_token_cache"]
    assert cache.get(tokens.hash_token(token)) is not None  # remembered

    # revoked by another worker: this one still remembers the token, yet refuses it
    assert tokens.revoke_token(db, "alice@example.org", str(doc["_id"]))
    assert cache.get(tokens.hash_token(token)) is not None
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 401
    assert cache.get(tokens.hash_token(token)) is None
    assert client.get("/api/v1/tokens", headers=bearer(other)).status_code == 200

    # expired while remembered
    soon, _ = tokens.create_token(db, "alice@example.org", "soon", expires_days=1)
    assert client.get("/api/v1/tokens", headers=bearer(soon)).status_code == 200
    digest = tokens.hash_token(soon)
    gone = datetime.now(UTC) - timedelta(seconds=1)
    cache.put(digest, replace(cache.get(digest), expires_at=gone))
    assert client.get("/api/v1/tokens", headers=bearer(soon)).status_code == 401

    # the user disabled: refused although the token is remembered and live
    users.set_status(db, "alice@example.org", "disabled")
    assert client.get("/api/v1/tokens", headers=bearer(other)).status_code == 403


def test_tokens_made_before_the_live_list_keep_working(app: Flask, db: Database[Any]) -> None:
    """A user record without token_ids (older data) is checked token by token."""
    old, old_doc = tokens.create_token(db, "alice@example.org", "old")
    db.users.update_one({"email": "alice@example.org"}, {"$unset": {"token_ids": ""}})
    client = app.test_client()
    for _ in range(2):
        assert client.get("/api/v1/tokens", headers=bearer(old)).status_code == 200
    assert app.extensions["clockwork_token_cache"].get(tokens.hash_token(old)) is None
    # revoking works without the list too
    assert tokens.revoke_token(db, "alice@example.org", str(old_doc["_id"]))
    assert client.get("/api/v1/tokens", headers=bearer(old)).status_code == 401
    # a new token lists every live one, older ones included
    kept, kept_doc = tokens.create_token(db, "alice@example.org", "kept")
    older, older_doc = tokens.create_token(db, "alice@example.org", "older")
    db.users.update_one({"email": "alice@example.org"}, {"$unset": {"token_ids": ""}})
    tokens.create_token(db, "alice@example.org", "new")
    listed = set(db.users.find_one({"email": "alice@example.org"})["token_ids"])
    assert {kept_doc["_id"], older_doc["_id"]} <= listed
    for t in (kept, older):
        assert client.get("/api/v1/tokens", headers=bearer(t)).status_code == 200


def test_the_user_list_does_not_show_token_ids(db: Database[Any]) -> None:
    tokens.create_token(db, "alice@example.org", "laptop")
    assert all("token_ids" not in doc for doc in users.list_users(db))


def test_create_token_api(app: Flask, db: Database[Any]) -> None:
    token, _ = tokens.create_token(db, "alice@example.org", "laptop")
    client = app.test_client()
    made = client.post(
        "/api/v1/tokens", json={"name": "cron", "expires_days": 7}, headers=bearer(token)
    )
    assert made.status_code == 201
    body = made.get_json()
    assert body["name"] == "cron" and body["expires_at"] and body["token"].startswith("cw_")
    assert "token_hash" not in body
    assert client.get("/api/v1/tokens", headers=bearer(body["token"])).status_code == 200
    listed = client.get("/api/v1/tokens", headers=bearer(token)).get_json()["tokens"]
    assert {t["name"] for t in listed} == {"laptop", "cron"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    for bad in (
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "x", "expires_days": 0},
        {"name": "x", "expires_days": "7"},
        {"name": "x", "expires_days": 99999},
        {"name": "x", "user_email": "bob@example.org"},
        ["name"],
    ):
        answer = client.post("/api/v1/tokens", json=bad, headers=bearer(token))
        assert answer.status_code == 400, bad
        assert answer.get_json()["error"]["message"]
    assert db.api_tokens.count_documents({"user_email": "bob@example.org"}) == 0


def test_session_api_writes_need_csrf_header(app: Flask, db: Database[Any]) -> None:
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["user_email"] = "alice@example.org"
    refused = client.post("/api/v1/tokens", json={"name": "x"})
    assert refused.status_code == 400
    assert "CSRF" in refused.get_json()["error"]["message"]
    csrf = csrf_token_for(client)
    made = client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRFToken": csrf})
    assert made.status_code == 201


def test_rate_limit_after_repeated_failures(config: Config, db: Database[Any]) -> None:
    app = create_app(
        with_overrides(config, {"login.failure_limit": 5, "login.failure_window_s": 60}),
        {"TESTING": True},
    )
    users.upsert_user(db, users.UserRow(email="alice@example.org"))
    good, _ = tokens.create_token(db, "alice@example.org", "laptop")
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/tokens", headers=bearer("cw_guess")).status_code == 401
    limited = client.get("/api/v1/tokens", headers=bearer("cw_guess"))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    # a valid token is never refused, from the same address too
    assert client.get("/api/v1/tokens", headers=bearer(good)).status_code == 200
    # the key is (address, claimed identity): another claim from there only gets its 401
    assert client.get("/api/v1/tokens", headers=bearer("cw_other")).status_code == 401
    assert client.get("/api/v1/tokens", headers=basic("bob@example.org", "cw_x")).status_code == 401
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert elsewhere.get("/api/v1/tokens", headers=bearer("cw_guess")).status_code == 401
    # counted in the database: another worker (another app) sees the same count
    other_worker = create_app(
        with_overrides(config, {"login.failure_limit": 5, "login.failure_window_s": 60}),
        {"TESTING": True},
    )
    assert (
        other_worker.test_client().get("/api/v1/tokens", headers=bearer("cw_guess")).status_code
        == 429
    )


def test_failure_limiter_window(db: Database[Any]) -> None:
    """A key's window opens at its first failure: ``limit`` failures within it throttle."""
    # times in the future: a TTL monitor never removes these documents too early
    base = float(int(time.time()) + 1000)
    now = [base + 7]  # 7 s into a clock-aligned 10 s window: no reset at base + 10
    limiter = FailureLimiter(limit=3, window_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.record(db, "a", "email:x@example.org") == 0
    assert limiter.failures(db, "a", "email:x@example.org") == 3
    assert limiter.record(db, "a", "email:x@example.org") == 10
    assert limiter.record(db, "a", "email:y@example.org") == 0  # another identity
    assert limiter.record(db, "b", "email:x@example.org") == 0  # another address
    now[0] += 4  # past a boundary of the clock: still the same window
    assert limiter.record(db, "a", "email:x@example.org") == 6
    now[0] += 6  # the window is over: a clean slate, and the expired ones are swept
    assert limiter.failures(db, "a", "email:x@example.org") == 0
    assert limiter.record(db, "a", "email:x@example.org") == 0
    assert db.auth_failures.count_documents({"expires_at": {"$lte": _at(now[0])}}) == 0
    stored = db.auth_failures.find_one({"identity": "email:x@example.org", "address": "a"})
    assert stored["count"] == 1 and stored["expires_at"] == _at(now[0] + 10)
    index = db.auth_failures.index_information()["expires_at"]
    assert index["expireAfterSeconds"] == 0


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_a_token_made_during_a_revocation_does_not_bring_the_revoked_one_back(
    app: Flask, db: Database[Any]
) -> None:
    client = app.test_client()
    token, doc = tokens.create_token(db, "alice@example.org", "laptop")
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200  # remembered
    # a revocation half done: out of the live list, its record not deleted yet
    db.users.update_one({"email": "alice@example.org"}, {"$pull": {"token_ids": doc["_id"]}})
    tokens.create_token(db, "alice@example.org", "ci")
    assert doc["_id"] not in db.users.find_one({"email": "alice@example.org"})["token_ids"]
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 401
