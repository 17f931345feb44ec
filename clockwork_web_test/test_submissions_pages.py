"""The submission pages: the form with the config's templates, the detail page, the tail."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web_test.submissions_fixtures import (
    ALICE,
    BOB,
    add_user,
    submit_config,
)
from test_common.receivers import free_port


def test_form_submit_detail_and_tail(config: Config, db: Database[Any], tmp_path: Any) -> None:
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    cfg = submit_config(
        config,
        clusters={
            "testcluster": {
                "submit": {
                    "backend": "slurmrestd",
                    "rest_url": f"http://127.0.0.1:{free_port()}",
                    "jwt_key_file": str(key),
                    "timeout_s": 2,
                }
            }
        },
        templates={"gpu": {"description": "One GPU job", "slurm": {"gres": "gpu:1"}}},
    )
    add_user(db, ALICE, {"testcluster": "alice"})
    add_user(db, BOB, {"testcluster": "bob"})
    from clockwork_web import create_app

    app = create_app(cfg, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    assert client.get("/submissions/new").status_code == 302  # to the login page
    with client.session_transaction() as session:
        session["user_email"] = ALICE

    page = client.get("/submissions/new")
    assert page.status_code == 200
    assert b"One GPU job" in page.data and b'name="cmd"' in page.data

    bad = client.post("/submissions/new", data={"cmd": "true", "time": "forever"})
    assert bad.status_code == 400 and b"slurm.time" in bad.data

    r = client.post(
        "/submissions/new",
        data={"uuid": "page-1", "template": "gpu", "cmd": "echo", "params": "a b\n; rm -rf ~"},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/submissions/page-1")
    doc = db.submissions.find_one({"uuid": "page-1"})
    assert doc["task"]["params"] == ["a b", "; rm -rf ~"]
    assert doc["task"]["slurm"] == {"gres": "gpu:1"}

    detail = client.get("/submissions/page-1")
    assert detail.status_code == 200
    assert b"/submissions/static/tail.js" in detail.data
    assert b'data-tail-url="/submissions/page-1/tail.json"' in detail.data
    assert b"<script>" not in detail.data  # no inline script (CSP)
    tail = client.get("/submissions/page-1/tail.json")
    assert tail.json == {"state": "PENDING", "final": False, "size": 0, "text": ""}
    assert client.get("/submissions/static/tail.js").status_code == 200
    listing = client.get("/submissions")
    assert b"page-1" in listing.data

    with client.session_transaction() as session:
        session["user_email"] = BOB
    assert client.get("/submissions/page-1").status_code == 404
    assert client.get("/submissions/page-1/tail.json").status_code == 404
