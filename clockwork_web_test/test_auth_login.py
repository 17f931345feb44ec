"""The OpenID Connect login, end to end against a real provider process."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import tokens, users
from test_common.oidc import (
    OidcProvider,
    csrf_token_for,
    login_via_oidc,
    oidc_provider,  # noqa: F401 - the fixture
    with_overrides,
)


def make_app(config: Config, provider: OidcProvider, **overrides: Any) -> Flask:
    cfg = with_overrides(config, {**provider.config_overrides(), **overrides})
    return create_app(cfg, {"TESTING": True})


@pytest.fixture
def provider(oidc_provider: OidcProvider) -> OidcProvider:  # noqa: F811
    oidc_provider.reset()
    yield oidc_provider
    oidc_provider.reset()


@pytest.fixture
def app(config: Config, db: Database[Any], provider: OidcProvider) -> Flask:
    return make_app(config, provider)


def add_user(db: Database[Any], email: str, **fields: Any) -> None:
    users.upsert_user(db, users.UserRow(email=email, **fields))


def session_works(client: FlaskClient) -> int:
    return client.get("/api/v1/tokens").status_code


def test_login_success(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "alice@example.org", display_name="Alice")
    client = app.test_client()
    assert session_works(client) == 401
    result = login_via_oidc(client, provider, "Alice@Example.org", next_path="/jobs?x=1")
    assert result.response.status_code == 302
    assert result.response.headers["Location"] == "/jobs?x=1"
    assert session_works(client) == 200
    doc = db.users.find_one({"email": "alice@example.org"})
    assert doc["last_login"] is not None
    assert db.audit_log.find_one({"action": "login", "result": "ok"})["user_email"] == (
        "alice@example.org"
    )
    # the provider saw exactly one token request (PKCE S256 is mandatory there)
    assert provider.stats()["token_requests"] >= 1


def test_login_page_and_security_headers(app: Flask) -> None:
    page = app.test_client().get("/login?next=/nodes")
    assert page.status_code == 200
    assert b"/login/oidc?next=/nodes" in page.data or b"/login/oidc?next=%2Fnodes" in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"]


def test_next_never_leaves_the_site(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "alice@example.org")
    client = app.test_client()
    result = login_via_oidc(client, provider, "alice@example.org", next_path="//evil.example/x")
    assert result.response.headers["Location"] == "/"


def test_wrong_domain_refused(config: Config, db: Database[Any], provider: OidcProvider) -> None:
    app = make_app(config, provider, **{"login.allowed_email_domains": ["example.org"]})
    add_user(db, "mallory@evil.example")
    client = app.test_client()
    result = login_via_oidc(client, provider, "mallory@evil.example")
    assert result.response.status_code == 403
    assert b"evil.example may not sign in" in result.response.data
    assert session_works(client) == 401
    add_user(db, "bob@example.org")
    assert login_via_oidc(client, provider, "bob@example.org").response.status_code == 302


def test_unverified_email_refused(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "alice@example.org")
    provider.set_next(email_verified=False)
    client = app.test_client()
    result = login_via_oidc(client, provider, "alice@example.org")
    assert result.response.status_code == 403
    assert b"not verified" in result.response.data
    assert session_works(client) == 401


def test_disabled_user_refused(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "dora@example.org", status="disabled")
    client = app.test_client()
    result = login_via_oidc(client, provider, "dora@example.org")
    assert result.response.status_code == 403
    assert b"disabled" in result.response.data
    assert session_works(client) == 401


def test_disabling_ends_sessions_and_tokens_at_once(
    app: Flask, db: Database[Any], provider: OidcProvider
) -> None:
    add_user(db, "erin@example.org")
    client = app.test_client()
    assert login_via_oidc(client, provider, "erin@example.org").response.status_code == 302
    token, _ = tokens.create_token(db, "erin@example.org", "laptop")
    bearer = {"Authorization": f"Bearer {token}"}
    other = app.test_client()
    assert session_works(client) == 200
    assert other.get("/api/v1/tokens", headers=bearer).status_code == 200

    assert users.set_status(db, "erin@example.org", "disabled")
    answer = client.get("/api/v1/tokens")
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "forbidden"
    assert other.get("/api/v1/tokens", headers=bearer).status_code == 403
    # the session was ended, not just refused: enabling again does not revive it
    users.set_status(db, "erin@example.org", "enabled")
    assert session_works(client) == 401
    assert other.get("/api/v1/tokens", headers=bearer).status_code == 200


def test_unknown_user_preprovisioned(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    client = app.test_client()
    result = login_via_oidc(client, provider, "newcomer@example.org")
    assert result.response.status_code == 403
    assert b"has no Clockwork account" in result.response.data
    assert db.users.find_one({"email": "newcomer@example.org"}) is None


def test_unknown_user_created_on_first_login(
    config: Config, db: Database[Any], provider: OidcProvider
) -> None:
    app = make_app(config, provider, **{"web.provisioning": "on_first_login"})
    client = app.test_client()
    result = login_via_oidc(client, provider, "newcomer@example.org")
    assert result.response.status_code == 302
    doc = db.users.find_one({"email": "newcomer@example.org"})
    assert doc["roles"] == ["user"] and doc["status"] == "enabled"
    assert doc["cluster_accounts"] == {} and doc["account_keys"] == []
    assert session_works(client) == 200


def test_replayed_state_refused(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "alice@example.org")
    client = app.test_client()
    start = client.get("/login/oidc")
    cookie_before = client.get_cookie("session").value
    import requests

    answer = requests.get(
        start.headers["Location"] + "&login_hint=alice@example.org&auto=1",
        allow_redirects=False,
        timeout=10,
    )
    location = answer.headers["Location"]
    callback = location[location.index("/auth/callback") :]
    assert client.get(callback).status_code == 302
    # same browser, state already consumed
    again = client.get(callback)
    assert again.status_code == 400
    # an attacker holding the pre-login cookie (which still carries the state)
    attacker = app.test_client()
    attacker.set_cookie("session", cookie_before)
    replay = attacker.get(callback)
    assert replay.status_code == 400
    assert b"already used" in replay.data
    assert session_works(attacker) == 401


def test_callback_without_login_refused(app: Flask) -> None:
    client = app.test_client()
    answer = client.get("/auth/callback?code=abc&state=forged")
    assert answer.status_code == 400
    assert session_works(client) == 401
    assert client.get("/auth/callback").status_code == 400
    assert client.get("/auth/callback?error=access_denied").status_code == 400


@pytest.mark.parametrize(
    "alteration", [{"bad_signature": True}, {"wrong_audience": True}, {"expired": True}]
)
def test_invalid_id_token_refused(
    app: Flask, db: Database[Any], provider: OidcProvider, alteration: dict[str, Any]
) -> None:
    add_user(db, "alice@example.org")
    provider.set_next(**alteration)
    client = app.test_client()
    result = login_via_oidc(client, provider, "alice@example.org")
    assert result.response.status_code == 400
    assert b"could not be verified" in result.response.data
    assert session_works(client) == 401
    # the next login (a good token) works
    assert login_via_oidc(client, provider, "alice@example.org").response.status_code == 302


def test_provider_unreachable(config: Config, db: Database[Any]) -> None:
    cfg = with_overrides(
        config,
        {
            "login.discovery_url": "http://127.0.0.1:9/.well-known/openid-configuration",
            "login.client_id": "x",
            "login.timeout_s": 2,
        },
    )
    answer = create_app(cfg, {"TESTING": True}).test_client().get("/login/oidc")
    assert answer.status_code == 503
    assert b"cannot be reached" in answer.data


def test_logout_needs_csrf(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    add_user(db, "alice@example.org")
    client = app.test_client()
    login_via_oidc(client, provider, "alice@example.org")
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert session_works(client) == 200
    token = csrf_token_for(client)
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 302
    assert session_works(client) == 401


def test_dev_login_disabled_by_default(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/login/dev").status_code == 404
    assert client.post("/login/dev", data={"email": "a@example.org"}).status_code in (400, 404)
    assert b"login-dev" not in client.get("/login").data


def test_dev_login_loopback_only(
    config: Config, db: Database[Any], provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(config, provider, **{"web.dev_login": True})
    add_user(db, "dev@example.org")
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert remote.get("/login/dev").status_code == 404
    proxied = app.test_client()
    assert proxied.get("/login/dev", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 404

    client = app.test_client()
    assert b"login-dev" in client.get("/login").data
    form = client.get("/login/dev?next=/nodes")
    assert form.status_code == 200
    token = re.search(rb'name="csrf_token" value="([^"]+)"', form.data).group(1).decode()
    with caplog.at_level(logging.WARNING, logger="clockwork_web.auth.views"):
        answer = client.post(
            "/login/dev", data={"email": "dev@example.org", "csrf_token": token, "next": "/nodes"}
        )
    assert answer.status_code == 302 and answer.headers["Location"] == "/nodes"
    assert any("DEVELOPMENT LOGIN" in r.getMessage() for r in caplog.records)
    assert session_works(client) == 200
    # IPv6 loopback works too; still refused without CSRF
    v6 = app.test_client()
    v6.environ_base["REMOTE_ADDR"] = "::1"
    assert v6.post("/login/dev", data={"email": "dev@example.org"}).status_code == 400


def test_healthz_is_public(app: Flask) -> None:
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json()["database"] == "ok"


def test_provider_form_login(app: Flask, db: Database[Any], provider: OidcProvider) -> None:
    """The provider's HTML form (what the browser tests fill in) completes the flow too."""
    import requests

    add_user(db, "alice@example.org")
    client = app.test_client()
    authorize_url = client.get("/login/oidc").headers["Location"]
    form = requests.get(authorize_url, timeout=10)
    assert form.status_code == 200 and 'id="sign-in"' in form.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    fields["email"] = "alice@example.org"
    answer = requests.post(
        f"{provider.issuer}/authorize", data=fields, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert client.get(location[location.index("/auth/callback") :]).status_code == 302
    assert session_works(client) == 200
