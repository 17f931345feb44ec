"""Security of the auth spine: proxies, throttling, /metrics, redirects, sessions, email case.

Each test is a finding of the security review, checked end to end through the
app (real database, real OIDC provider process where a login is needed).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_core.schema import Job
from clockwork_web import create_app
from clockwork_web.auth import tokens, users
from slurm_state import store
from test_common.oidc import (
    OidcProvider,
    csrf_token_for,
    login_via_oidc,
    oidc_provider,  # noqa: F401 - the fixture
    with_overrides,
)

ALICE = "alice@example.org"
ADMIN = "admin@example.org"
PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # the reverse proxy, on this machine


def make_app(config: Config, **overrides: Any) -> Flask:
    return create_app(with_overrides(config, overrides), {"TESTING": True})


def via_proxy(client_address: str, **headers: str) -> dict[str, str]:
    """What a proxy that appends to X-Forwarded-For sends for ``client_address``."""
    sent = headers.pop("X_Forwarded_For", None)
    forwarded = f"{sent}, {client_address}" if sent else client_address
    return {"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https", **headers}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_works(client: FlaskClient) -> int:
    return client.get("/api/v1/tokens").status_code


def dev_login(client: FlaskClient, email: str, next_path: str = "/") -> Any:
    """Sign in through the development login (loopback only), as a browser would."""
    form = client.get(f"/login/dev?next={quote(next_path)}")
    assert form.status_code == 200
    token = re.search(rb'name="csrf_token" value="([^"]+)"', form.data).group(1).decode()
    return client.post("/login/dev", data={"email": email, "csrf_token": token, "next": next_path})


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


@pytest.fixture
def provider(oidc_provider: OidcProvider) -> OidcProvider:  # noqa: F811
    oidc_provider.reset()
    return oidc_provider


@pytest.fixture
def dev_app(config: Config, db: Database[Any]) -> Flask:
    users.upsert_user(db, users.UserRow(email=ALICE))
    users.upsert_user(db, users.UserRow(email=ADMIN, roles=("admin",)))
    return make_app(config, **{"web.dev_login": True})


# --------------------------------------------------------------- 4: proxies and throttling


def test_throttling_keys_on_the_real_client_behind_trusted_proxies(
    config: Config, db: Database[Any]
) -> None:
    users.upsert_user(db, users.UserRow(email=ALICE))
    good, _ = tokens.create_token(db, ALICE, "laptop")
    limits = {"login.failure_limit": 3}
    app = make_app(config, **limits, **{"web.trusted_proxy_hops": 1})
    client = app.test_client()
    mallory = via_proxy("203.0.113.5")
    for _ in range(3):
        answer = client.get("/api/v1/tokens", headers={**mallory, **bearer("cw_guess")})
        assert answer.status_code == 401
    assert client.get("/api/v1/tokens", headers={**mallory, **bearer("cw_guess")}).status_code == (
        429
    )
    # another client behind the same proxy is not affected, even with the same claim
    other = via_proxy("203.0.113.6")
    assert client.get("/api/v1/tokens", headers={**other, **bearer("cw_guess")}).status_code == 401
    # a forged X-Forwarded-For does not escape: the proxy appends the real address
    forged = via_proxy("203.0.113.5", X_Forwarded_For="198.51.100.1")
    assert client.get("/api/v1/tokens", headers={**forged, **bearer("cw_guess")}).status_code == (
        429
    )
    # a valid credential is never refused, from the throttled client too
    assert client.get("/api/v1/tokens", headers={**mallory, **bearer(good)}).status_code == 200
    failure = db.auth_failures.find_one({"address": "203.0.113.5"})
    assert failure["identity"] == "token:cw_guess" and failure["count"] == 5

    # without trusted hops (the default) the header is ignored: the peer is the client
    plain = make_app(config, **limits).test_client()
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        headers = {**via_proxy(address), **bearer("cw_plain")}
        assert plain.get("/api/v1/tokens", headers=headers).status_code == 401
    headers = {**via_proxy("192.0.2.4"), **bearer("cw_plain")}
    assert plain.get("/api/v1/tokens", headers=headers).status_code == 429
    assert db.auth_failures.find_one({"identity": "token:cw_plain"})["address"] == "127.0.0.1"


def test_a_valid_login_is_never_throttled(
    config: Config, db: Database[Any], provider: OidcProvider
) -> None:
    app = make_app(config, **provider.config_overrides(), **{"login.failure_limit": 2})
    client = app.test_client()
    for _ in range(2):  # no account yet: refused
        assert login_via_oidc(client, provider, "bob@example.org").response.status_code == 403
    throttled = login_via_oidc(client, provider, "bob@example.org").response
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    # others signing in from the same address are not affected
    users.upsert_user(db, users.UserRow(email=ALICE))
    assert login_via_oidc(client, provider, ALICE).response.status_code == 302
    # and once bob's account exists, his next (valid) login works at once
    users.upsert_user(db, users.UserRow(email="bob@example.org"))
    bob = app.test_client()
    assert login_via_oidc(bob, provider, "bob@example.org").response.status_code == 302
    assert session_works(bob) == 200


def test_dev_login_refuses_proxied_requests_behind_trusted_proxies(
    config: Config, db: Database[Any]
) -> None:
    app = make_app(config, **{"web.dev_login": True, "web.trusted_proxy_hops": 1})
    client = app.test_client()
    # a proxy on loopback forwarding a loopback-looking client is still a proxy
    assert client.get("/login/dev", headers=via_proxy("127.0.0.1")).status_code == 404
    assert client.get("/login/dev", headers=via_proxy("10.1.2.3")).status_code == 404
    assert client.get("/login/dev").status_code == 200  # direct, from loopback


# --------------------------------------------------------------- 5: /metrics


def test_metrics_behind_a_proxy_need_the_token(config: Config, db: Database[Any]) -> None:
    store.store_jobs(
        db,
        "testcluster",
        [Job(cluster_name="testcluster", job_id=1, username="secretuser", job_state="RUNNING")],
        scrape_id="s",
    )
    app = make_app(config, **{"web.trusted_proxy_hops": 1, "web.metrics_token": "prom-token"})
    client = app.test_client()
    visitor = via_proxy("203.0.113.9")
    refused = client.get("/metrics", headers=visitor)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    # claiming to be local through the proxy does not help
    spoofed = via_proxy("203.0.113.9", X_Forwarded_For="127.0.0.1")
    assert client.get("/metrics", headers=spoofed).status_code == 403
    scraped = client.get("/metrics", headers={**visitor, **bearer("prom-token")})
    assert scraped.status_code == 200 and b"clockwork_jobs{" in scraped.data
    # no per-user series unless configured
    assert b"clockwork_user_jobs" not in scraped.data and b"secretuser" not in scraped.data
    assert client.get("/metrics", headers={**visitor, **bearer("wrong")}).status_code == 403
    # direct from loopback (no proxy) stays allowed by web.metrics_allow
    assert client.get("/metrics", environ_base=PROXY).status_code == 200

    web = app.config["CLOCKWORK"].web.model_copy(update={"metrics_per_user_labels": True})
    app.config["CLOCKWORK"] = app.config["CLOCKWORK"].model_copy(update={"web": web})
    labelled = client.get("/metrics", headers={**visitor, **bearer("prom-token")})
    assert b'user="secretuser"' in labelled.data
    assert isinstance(web.metrics_token, SecretStr)


# --------------------------------------------------------------- 6: open redirect


@pytest.mark.parametrize(
    "next_path",
    [
        "/\t/evil.com",
        "/\n/evil.com",
        "//evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
    ],
)
def test_login_never_redirects_off_site(dev_app: Flask, next_path: str) -> None:
    client = dev_app.test_client()
    answer = dev_login(client, ALICE, next_path)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    # the same through the query string (percent-encoded, as a link would carry it)
    assert client.get(f"/login?next={quote(next_path)}").headers["Location"] == "/"


# --------------------------------------------------------------- 7: sessions end


def test_logout_ends_copies_of_the_session(
    config: Config, db: Database[Any], provider: OidcProvider
) -> None:
    app = make_app(config, **provider.config_overrides())
    users.upsert_user(db, users.UserRow(email=ALICE))
    users.upsert_user(db, users.UserRow(email="bob@example.org"))
    client, bob = app.test_client(), app.test_client()
    assert login_via_oidc(client, provider, ALICE).response.status_code == 302
    assert login_via_oidc(bob, provider, "bob@example.org").response.status_code == 302
    thief = copy_of(app, client)
    assert session_works(thief) == 200
    out = client.post("/logout", data={"csrf_token": csrf_token_for(client)})
    assert out.status_code == 302
    assert session_works(client) == 401
    assert session_works(thief) == 401
    assert session_works(bob) == 200  # other users keep their sessions
    # signing in again gives a working session
    assert login_via_oidc(client, provider, ALICE).response.status_code == 302
    assert session_works(client) == 200 and session_works(thief) == 401


def test_role_changes_and_disabling_end_sessions(dev_app: Flask, db: Database[Any]) -> None:
    client = dev_app.test_client()
    assert dev_login(client, ALICE).status_code == 302
    thief = copy_of(dev_app, client)
    assert session_works(thief) == 200
    assert users.set_roles(db, ALICE, ["user", "staff"])
    assert session_works(thief) == 401 and session_works(client) == 401

    assert dev_login(client, ALICE).status_code == 302
    thief = copy_of(dev_app, client)
    users.set_roles(db, ALICE, ["user", "staff"])  # no change: sessions are kept
    assert session_works(thief) == 200
    assert users.set_status(db, ALICE, "disabled")
    assert session_works(thief) == 403  # disabled, said so
    assert users.set_status(db, ALICE, "enabled")
    assert session_works(thief) == 401  # enabling again does not revive the cookie

    # the admin CLI goes through the same functions (and any case of the email)
    assert dev_login(client, ALICE).status_code == 302
    thief = copy_of(dev_app, client)
    result = dev_app.test_cli_runner().invoke(
        args=["users", "set-role", "Alice@Example.org", "user"]
    )
    assert result.exit_code == 0, result.output
    assert session_works(thief) == 401


# --------------------------------------------------------------- 11: email case


def test_admin_cannot_disable_or_demote_themselves_by_case(
    dev_app: Flask, db: Database[Any]
) -> None:
    client = dev_app.test_client()
    assert dev_login(client, ADMIN).status_code == 302
    csrf = csrf_token_for(client)
    for url in ("/admin/users/ADMIN@example.org", "/admin/users/Admin@Example.ORG"):
        answer = client.post(url + "/status", data={"status": "disabled", "csrf_token": csrf})
        assert answer.status_code == 400
        answer = client.post(url + "/roles", data={"roles": ["user"], "csrf_token": csrf})
        assert answer.status_code == 400
    doc = users.get_user(db, ADMIN)
    assert doc["status"] == "enabled" and doc["roles"] == ["admin"]
    # any case of another user's email names that user
    assert b"alice@example.org" in client.get("/admin/users/ALICE@example.org").data
    answer = client.post(
        "/admin/users/ALICE@Example.org/roles", data={"roles": ["staff"], "csrf_token": csrf}
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/admin/users/alice@example.org")
    assert users.get_user(db, ALICE)["roles"] == ["staff"]


def test_token_lookups_ignore_the_case_of_the_email(db: Database[Any]) -> None:
    users.upsert_user(db, users.UserRow(email="Carol@Example.org"))
    assert users.get_user(db, "carol@example.org")["email"] == "carol@example.org"
    token, doc = tokens.create_token(db, "CAROL@example.org", "laptop")
    assert doc["user_email"] == "carol@example.org"
    assert [t["name"] for t in tokens.list_tokens(db, "Carol@Example.ORG")] == ["laptop"]
    assert tokens.revoke_token(db, "CAROL@EXAMPLE.ORG", str(doc["_id"]))
    assert tokens.resolve_token(db, token) is None
