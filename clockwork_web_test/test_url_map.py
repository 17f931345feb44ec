"""Every route refuses anonymous access unless listed public; no one reads another's data.

The walk covers whatever blueprints are registered when it runs, so the routes
other packages add are checked too.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Rule

from clockwork_core.config import Config
from clockwork_core.schema import Job, job_document
from clockwork_web import create_app
from clockwork_web.auth import tokens, users
from clockwork_web.auth.access import is_public_endpoint

#: Sample values for URL arguments, by name then converter.
_SAMPLES: dict[str, Any] = {"cluster": "testcluster", "cluster_name": "testcluster"}
#: An address that is neither loopback nor in any allow-list.
OUTSIDER = "192.0.2.10"


def _sample(rule: Rule, name: str) -> Any:
    converter = type(rule._converters[name]).__name__
    if name in _SAMPLES:
        return _SAMPLES[name]
    if converter in ("IntegerConverter", "NumberConverter"):
        return 1
    if converter == "FloatConverter":
        return 1.0
    if converter == "UUIDConverter":
        return "12345678-1234-5678-1234-567812345678"
    return "x"


@pytest.fixture
def app(config: Config, db: Database[Any]) -> Flask:
    return create_app(config, {"TESTING": True, "WTF_CSRF_ENABLED": False})


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """``(endpoint, method, url)`` for every non-public route."""
    adapter = app.url_map.bind("localhost")
    found = []
    with app.app_context():
        for rule in app.url_map.iter_rules():
            if is_public_endpoint(rule.endpoint):
                continue
            values = {name: _sample(rule, name) for name in rule.arguments}
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                url = adapter.build(rule.endpoint, values, method=method)
                found.append((rule.endpoint, method, url))
    return found


def test_every_route_refuses_anonymous_access(app: Flask) -> None:
    routes = _routes(app)
    assert any(url.startswith("/api/v1/tokens") for _, _, url in routes)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = OUTSIDER
    problems = []
    for endpoint, method, url in routes:
        answer = client.open(url, method=method, json={})
        if url.startswith("/api/"):
            ok = answer.status_code == 401 and answer.is_json
        else:
            location = answer.headers.get("Location", "")
            ok = (answer.status_code in (302, 303) and "/login" in location) or (
                answer.status_code in (401, 403)
            )
        if not ok:
            problems.append(f"{method} {url} ({endpoint}) -> {answer.status_code}")
    assert not problems, "anonymous access allowed:\n" + "\n".join(problems)


#: The listed few routes other packages make public, and why. Making another
#: route public means adding it here, in review.
KNOWN_PUBLIC: dict[str, str] = {
    "api.openapi_json": "the OpenAPI document describes the API, not its data",
    "api.docs": "the rendered API reference",
    "metrics.metrics": "checks its own bearer token or allowed address",
    "pages.set_language": "the login page's language switch (a cookie)",
    "pages.set_theme": "the login page's theme switch (a cookie)",
}


def test_public_routes_are_the_listed_few(app: Flask) -> None:
    with app.app_context():
        public = {r.endpoint for r in app.url_map.iter_rules() if is_public_endpoint(r.endpoint)}
    extra = {
        e for e in public if not e.startswith(("auth.", "static")) and not e.endswith(".static")
    }
    assert extra <= set(
        KNOWN_PUBLIC
    ), f"unlisted public routes: {sorted(extra - set(KNOWN_PUBLIC))}"
    auth_public = {e for e in public if e.startswith("auth.")}
    assert auth_public == {
        "auth.login",
        "auth.login_oidc",
        "auth.callback",
        "auth.login_dev",
        "auth.healthz",
    }


# --------------------------------------------------------------------------- cross-user reads


@pytest.fixture
def people(db: Database[Any]) -> dict[str, str]:
    """alice and bob (users), each with a token and a job; returns email -> token."""
    out = {}
    for name in ("alice", "bob"):
        email = f"{name}@example.org"
        users.upsert_user(db, users.UserRow(email=email, cluster_accounts={"testcluster": name}))
        out[email], _ = tokens.create_token(db, email, "t")
    now = datetime.now(UTC)
    for job_id, owner in ((101, "alice"), (202, "bob")):
        job = Job(
            cluster_name="testcluster",
            job_id=job_id,
            username=owner,
            name=f"{owner}-job",
            job_state="RUNNING",
            submit_time=now,
        )
        db.jobs.insert_one(job_document(job, user=f"{owner}@example.org", seen=now, scrape_id="s"))
    db.job_user_props.insert_one(
        {
            "cluster_name": "testcluster",
            "job_id": 101,
            "user_email": "alice@example.org",
            "props": {"secret": "alice-only"},
            "prop_keys": ["secret=alice-only"],
            "updated_at": now,
        }
    )
    return out


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _require_route(app: Flask, path: str, method: str = "GET") -> None:
    try:
        app.url_map.bind("localhost").match(path, method=method)
    except (NotFound, MethodNotAllowed):
        pytest.skip(f"{method} {path} is not registered (yet)")


def _client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_no_one_reads_anothers_job(app: Flask, people: dict[str, str]) -> None:
    path = "/api/v1/jobs/testcluster/101"
    _require_route(app, path)
    client = _client(app)
    assert client.get(path, headers=_as(people["alice@example.org"])).status_code == 200
    answer = client.get(path, headers=_as(people["bob@example.org"]))
    assert answer.status_code in (403, 404)
    assert b"alice-job" not in answer.data


def test_no_one_lists_anothers_jobs(app: Flask, people: dict[str, str]) -> None:
    _require_route(app, "/api/v1/jobs")
    client = _client(app)
    for query in ("", "?user=alice@example.org", "?job_id=101"):
        answer = client.get("/api/v1/jobs" + query, headers=_as(people["bob@example.org"]))
        assert answer.status_code in (200, 400, 403), query
        assert b"alice-job" not in answer.data, query


def test_no_one_reads_or_writes_anothers_props(
    app: Flask, db: Database[Any], people: dict[str, str]
) -> None:
    path = "/api/v1/jobs/testcluster/101/props"
    _require_route(app, path)
    client = _client(app)
    mine = client.get(path, headers=_as(people["alice@example.org"]))
    assert mine.status_code == 200 and b"alice-only" in mine.data
    bob = _as(people["bob@example.org"])
    answer = client.get(path, headers=bob)
    assert answer.status_code in (403, 404) and b"alice-only" not in answer.data
    for method in ("PATCH", "DELETE"):
        try:
            app.url_map.bind("localhost").match(path, method=method)
        except MethodNotAllowed:
            continue
        body = {"secret": "bob"} if method == "PATCH" else {"keys": ["secret"]}
        changed = client.open(path, method=method, json=body, headers=bob)
        assert changed.status_code in (403, 404), method
    assert db.job_user_props.find_one({"job_id": 101})["props"] == {"secret": "alice-only"}


def test_no_one_reads_or_revokes_anothers_tokens(
    app: Flask, db: Database[Any], people: dict[str, str]
) -> None:
    client = _client(app)
    bob = _as(people["bob@example.org"])
    listed = client.get("/api/v1/tokens", headers=bob).get_json()["tokens"]
    alice_ids = {str(d["_id"]) for d in db.api_tokens.find({"user_email": "alice@example.org"})}
    assert alice_ids and not alice_ids & {t["id"] for t in listed}
    for token_id in alice_ids:
        assert client.delete(f"/api/v1/tokens/{token_id}", headers=bob).status_code == 404
    assert db.api_tokens.count_documents({"user_email": "alice@example.org"}) == 1
    # Basic auth naming alice with bob's token is refused too
    raw = base64.b64encode(f"alice@example.org:{people['bob@example.org']}".encode()).decode()
    answer = client.get("/api/v1/tokens", headers={"Authorization": f"Basic {raw}"})
    assert answer.status_code == 401
