"""The access decorators: roles (staff reads, never writes), page login redirects."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import tokens, users
from clockwork_web.auth.access import (
    api_auth_required,
    current_user,
    is_loopback,
    login_required,
    roles_required,
    safe_next,
)


@pytest.fixture
def app(config: Config, db: Database[Any]) -> Flask:
    app = create_app(config, {"TESTING": True})
    bp = Blueprint("roles_probe", __name__)

    @bp.route("/api/v1/probe/admin", methods=["GET", "POST"])
    @api_auth_required
    @roles_required("admin")
    def admin_only() -> Any:
        return {"who": current_user().email}

    @bp.route("/api/v1/probe/staff", methods=["GET", "POST"])
    @api_auth_required
    @roles_required("staff")
    def staff_view() -> Any:
        return {"who": current_user().email}

    @bp.get("/probe/page")
    @login_required
    def page() -> Any:
        return "hello " + current_user().display_name

    app.register_blueprint(bp)
    return app


@pytest.fixture
def people(db: Database[Any]) -> dict[str, dict[str, str]]:
    out = {}
    for name, roles in (("u", ("user",)), ("s", ("staff",)), ("a", ("admin",))):
        email = f"{name}@example.org"
        users.upsert_user(db, users.UserRow(email=email, roles=roles, display_name=name.upper()))
        token, _ = tokens.create_token(db, email, "t")
        out[name] = {"Authorization": f"Bearer {token}"}
    return out


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("u", "GET", "/api/v1/probe/admin", 403),
        ("s", "GET", "/api/v1/probe/admin", 403),
        ("a", "GET", "/api/v1/probe/admin", 200),
        ("a", "POST", "/api/v1/probe/admin", 200),
        ("s", "POST", "/api/v1/probe/admin", 403),
        ("u", "GET", "/api/v1/probe/staff", 403),
        ("s", "GET", "/api/v1/probe/staff", 200),
        ("s", "POST", "/api/v1/probe/staff", 403),  # staff is read-only
        ("a", "POST", "/api/v1/probe/staff", 200),
    ],
)
def test_roles(
    app: Flask, people: dict[str, Any], who: str, method: str, path: str, status: int
) -> None:
    answer = app.test_client().open(path, method=method, headers=people[who], json={})
    assert answer.status_code == status
    if status == 403:
        assert answer.get_json()["error"]["code"] == "forbidden"


def test_pages_redirect_to_login_then_work(app: Flask, db: Database[Any]) -> None:
    client = app.test_client()
    answer = client.get("/probe/page?x=1")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=/probe/page")
    users.upsert_user(db, users.UserRow(email="p@example.org", display_name="Pat"))
    with client.session_transaction() as sess:
        sess["user_email"] = "p@example.org"
    assert client.get("/probe/page").data == b"hello Pat"
    users.set_status(db, "p@example.org", "disabled")
    assert client.get("/probe/page").status_code == 403


def test_roles_required_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError):
        roles_required("root")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/"),
        ("/jobs?a=1", "/jobs?a=1"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        # what a browser reads after dropping tabs/newlines and reading \ as /
        ("/\t/evil.com", "/"),
        ("/\n/evil.com", "/"),
        ("/\r/evil.com", "/"),
        ("\t//evil.com", "/"),
        (" //evil.com", "/"),
        ("/\x00/evil.com", "/"),
        ("//evil.com", "/"),
        ("///evil.com", "/"),
        ("/\\evil.com", "/"),
        ("\\\\evil.com", "/"),
        ("\\/evil.com", "/"),
        ("https://evil.com", "/"),
        ("HTTPS://evil.com", "/"),
        ("javascript:alert(1)", "/"),
        ("JaVaScRiPt:alert(1)", "/"),
        ("data:text/html,x", "/"),
        ("evil.com", "/"),
        ("", "/"),
        ("/" + "a" * 3000, "/"),
        # still paths on this site: percent-escapes are not decoded by the browser
        ("/%09/evil.com", "/%09/evil.com"),
        ("/%2F%2Fevil.com", "/%2F%2Fevil.com"),
        ("/%5Cevil.com", "/%5Cevil.com"),
        ("/jobs/evil.com?next=//x#//y", "/jobs/evil.com?next=//x#//y"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("") and not is_loopback("nonsense")
