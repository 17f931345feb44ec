"""What the submission tests share: a config with a submitting cluster, users, tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from clockwork_core.config import Config, load_config

ALICE = "alice@example.org"
BOB = "bob@example.org"
STAFF = "staff@example.org"


def submit_config(config: Config, *, clusters: dict[str, Any], **overrides: Any) -> Config:
    """The test's database with ``clusters`` (name -> cluster table) and extra keys."""
    return load_config(
        env={},
        overrides={
            "database.uri": config.database.uri,
            "database.name": config.database.name,
            "web.secret_key": "test-secret",
            "clusters": clusters,
            **overrides,
        },
    )


def add_user(
    db: Database[Any], email: str, accounts: dict[str, str], roles: tuple[str, ...] = ("user",)
) -> None:
    db.users.insert_one(
        {
            "email": email,
            "display_name": email.split("@")[0],
            "status": "enabled",
            "roles": list(roles),
            "cluster_accounts": accounts,
            "account_keys": [f"{c}/{u}" for c, u in accounts.items()],
            "settings": {},
            "created_at": datetime.now(UTC),
            "last_login": None,
        }
    )


def token_headers(db: Database[Any], email: str) -> dict[str, str]:
    from clockwork_web.auth.tokens import create_token

    token, _ = create_token(db, email, "tests")
    return {"Authorization": f"Bearer {token}"}


def make_client(config: Config) -> tuple[Flask, FlaskClient]:
    """The real app for ``config`` and its test client."""
    from clockwork_web import create_app

    app = create_app(config, {"TESTING": True})
    return app, app.test_client()
