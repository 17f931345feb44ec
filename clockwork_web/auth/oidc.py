"""OpenID Connect login through Authlib's Flask client.

Authlib does discovery, state, nonce, PKCE (S256) and validates the ID token
(signature against the provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``).
On top of it, this module refuses a state used before (recorded in
``auth_states``, so a replayed callback fails even with an old session
cookie), checks the email (present, verified when the provider says, in an
allowed domain), and applies the provisioning policy.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, request, session
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from clockwork_core.config import Config, LoginConfig
from clockwork_web.auth import users

log = logging.getLogger(__name__)

CLIENT_NAME = "oidc"
#: How long a used state is remembered (Authlib's states live one hour).
STATE_MEMORY = timedelta(hours=2)


class LoginError(Exception):
    """A login that must be refused; ``message`` is safe to show the user.

    ``email`` is the address the login claimed, once known (rate limiting, audit).
    """

    def __init__(self, message: str, status: int = 403, email: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.email = email


def init_app(app: Flask) -> None:
    """Register the OIDC client (metadata is fetched on first use, not here)."""
    cfg: Config = app.config["CLOCKWORK"]
    login: LoginConfig = cfg.login
    oauth = OAuth(app)
    oauth.register(
        CLIENT_NAME,
        client_id=login.client_id,
        client_secret=login.client_secret.get_secret_value() if login.client_secret else None,
        server_metadata_url=login.discovery_url,
        client_kwargs={
            "scope": login.scope,
            "code_challenge_method": "S256",
            "default_timeout": login.timeout_s,
        },
    )
    app.extensions["clockwork_oauth"] = oauth


def client() -> Any:
    return current_app.extensions["clockwork_oauth"].create_client(CLIENT_NAME)


def start_login(redirect_uri: str) -> Any:
    """The redirect to the provider's authorization endpoint (state, nonce, PKCE)."""
    return client().authorize_redirect(redirect_uri)


def check_claims(claims: dict[str, Any], allowed_domains: list[str]) -> tuple[str, str]:
    """``(email, display name)`` from validated ID token claims, or LoginError.

    Pure: the email must be there, verified if the provider says whether it
    is, and in one of ``allowed_domains`` (when that list is not empty).
    """
    raw = claims.get("email")
    try:
        email = users.normalize_email(raw)
    except users.UserInputError:
        raise LoginError("the identity provider gave no usable email address") from None
    if "email_verified" in claims and claims["email_verified"] not in (True, "true", "True"):
        raise LoginError(f"the provider has not verified the address {email}", email=email)
    if allowed_domains:
        domain = users.email_domain(email)
        if domain not in {d.strip().lower().lstrip("@") for d in allowed_domains}:
            raise LoginError(
                f"addresses of {domain} may not sign in here; "
                f"use an address of {', '.join(allowed_domains)}",
                email=email,
            )
    name = claims.get("name") or email.split("@")[0]
    if not isinstance(name, str):
        name = email.split("@")[0]
    return email, name[:200]


def _consume_state(db: Database[Any], state: str) -> None:
    """Record ``state`` as used; LoginError if it was used before or has expired."""
    key = f"_state_{CLIENT_NAME}_{state}"
    saved = session.get(key)
    if not isinstance(saved, dict) or saved.get("exp", 0) < time.time():
        raise LoginError("this login link has expired or was not started here; sign in again", 400)
    now = datetime.now(UTC)
    try:
        db.auth_states.insert_one({"state": state, "used_at": now})
    except DuplicateKeyError:
        raise LoginError("this login response was already used; sign in again", 400) from None
    db.auth_states.delete_many({"used_at": {"$lt": now - STATE_MEMORY}})


def finish_login(db: Database[Any], allowed_domains: list[str]) -> tuple[str, str]:
    """Complete the callback of this request: ``(email, name)`` or LoginError."""
    error = request.args.get("error")
    if error:
        raise LoginError(f"the identity provider refused the login: {error[:100]}", 400)
    state = request.args.get("state")
    if not state or not request.args.get("code") or len(state) > 200:
        raise LoginError("the login response lacks its code or state; sign in again", 400)
    _consume_state(db, state)
    try:
        token = client().authorize_access_token()
    except Exception as exc:
        log.warning("OIDC callback refused: %s: %s", type(exc).__name__, exc)
        raise LoginError("the identity provider's answer could not be verified", 400) from None
    claims = token.get("userinfo")
    if not claims:
        raise LoginError("the identity provider sent no ID token", 400)
    return check_claims(dict(claims), allowed_domains)


def provision(db: Database[Any], email: str, name: str, policy: str) -> dict[str, Any]:
    """The user record for a verified email under the provisioning ``policy``."""
    email = users.email_key(email)
    doc = db.users.find_one({"email": email})
    if doc is None:
        if policy != "on_first_login":
            raise LoginError(
                f"{email} has no Clockwork account; ask the Clockwork administrators to add you",
                email=email,
            )
        users.upsert_user(db, users.UserRow(email=email, display_name=name))
        doc = db.users.find_one({"email": email})
        log.info("created user %s at first login", email)
    if doc is None or doc.get("status") != "enabled":
        raise LoginError(
            f"the account {email} is disabled; ask the Clockwork administrators", email=email
        )
    return doc
