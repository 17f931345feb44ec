"""The submission REST API and the slurm-proxy interface, without a live Slurm.

The cluster's backend is slurmrestd at a closed port: a real "unreachable
cluster", so submissions stay PENDING (202) and everything up to the backend
call is exercised for real. The live tests (test_submit_live.py) cover Slurm.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.submissions import service
from clockwork_web_test.submissions_fixtures import (
    ALICE,
    BOB,
    STAFF,
    add_user,
    make_client,
    submit_config,
    token_headers,
)
from test_common.receivers import free_port


@pytest.fixture
def setup(config: Config, db: Database[Any], tmp_path: Any) -> dict[str, Any]:
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
            },
            "other": {"submit": {"backend": "local"}},
        },
    )
    add_user(db, ALICE, {"testcluster": "alice"})
    add_user(db, BOB, {"testcluster": "bob", "other": "bob"})
    add_user(db, STAFF, {}, roles=("staff",))
    _, client = make_client(cfg)
    return {
        "config": cfg,
        "client": client,
        "alice": token_headers(db, ALICE),
        "bob": token_headers(db, BOB),
        "staff": token_headers(db, STAFF),
    }


def task(**fields: Any) -> dict[str, Any]:
    return {"cluster": "testcluster", "cmd": "echo", "params": ["hi"], **fields}


def test_unreachable_cluster_accepts_pending_and_duplicate_uuid_is_409(
    setup: dict[str, Any], db: Database[Any]
) -> None:
    client = setup["client"]
    r = client.post("/api/v1/submissions", json=task(uuid="u-1"), headers=setup["alice"])
    assert r.status_code == 202, r.json
    body = r.json
    assert (body["uuid"], body["state"], body["username"], body["job_id"]) == (
        "u-1",
        "PENDING",
        "alice",
        None,
    )
    assert "slurmrestd" in body["last_error"]
    assert r.headers["Location"] == "/api/v1/submissions/u-1"

    again = client.post("/api/v1/submissions", json=task(uuid="u-1"), headers=setup["alice"])
    assert again.status_code == 409
    assert again.json["error"]["code"] == "conflict"
    assert again.json["submission"]["uuid"] == "u-1"
    # someone else's uuid: uuids are per user, so bob's is a new submission of his
    other = client.post("/api/v1/submissions", json=task(uuid="u-1"), headers=setup["bob"])
    assert other.status_code == 202 and other.json["user"] != again.json["submission"]["user"]

    results = [
        d["result"] for d in db.audit_log.find({"action": "submission.submit"}).sort("time", 1)
    ]
    assert results == ["pending", "duplicate", "pending"]
    entry = db.audit_log.find_one({"action": "submission.submit", "result": "pending"})
    assert entry["user_email"] == ALICE and entry["remote_addr"]


def test_option_outside_the_allow_list_is_a_400_naming_it(setup: dict[str, Any]) -> None:
    r = setup["client"].post(
        "/api/v1/submissions", json=task(slurm={"uid": "0"}), headers=setup["alice"]
    )
    assert r.status_code == 400
    assert r.json["error"]["message"].startswith("slurm.uid: 'uid' is not an allowed Slurm option")
    r = setup["client"].post(
        "/api/v1/submissions", json=task(slurm={"time": "1;id"}), headers=setup["alice"]
    )
    assert r.status_code == 400 and r.json["error"]["message"].startswith("slurm.time:")


def test_identity_comes_from_the_user_record_only(setup: dict[str, Any], db: Database[Any]) -> None:
    client = setup["client"]
    # a username in the body is not a field of the API at all
    r = client.post("/api/v1/submissions", json=task(username="bob"), headers=setup["alice"])
    assert r.status_code == 400 and "username" in r.json["error"]["message"]
    # no account on that cluster: 403
    r = client.post("/api/v1/submissions", json=task(cluster="other"), headers=setup["alice"])
    assert r.status_code == 403
    r = client.post("/api/v1/submissions", json=task(uuid="b-1"), headers=setup["bob"])
    assert r.status_code == 202 and r.json["username"] == "bob"
    assert db.audit_log.find_one({"result": "refused", "user_email": ALICE}) is not None


def test_anonymous_is_refused(setup: dict[str, Any]) -> None:
    r = setup["client"].post("/api/v1/submissions", json=task())
    assert r.status_code == 401
    assert setup["client"].post("/submit", json={"task": task()}).status_code == 401


def test_others_cannot_see_or_cancel_and_owner_cancels_pending(
    setup: dict[str, Any], db: Database[Any]
) -> None:
    client = setup["client"]
    client.post("/api/v1/submissions", json=task(uuid="a-1"), headers=setup["alice"])
    assert client.get("/api/v1/submissions/a-1", headers=setup["bob"]).status_code == 404
    r = client.post("/api/v1/submissions/a-1/cancel", headers=setup["bob"])
    assert r.status_code == 404
    assert client.get("/api/v1/submissions/a-1/files", headers=setup["bob"]).status_code == 404
    # staff may look but not act
    assert client.get("/api/v1/submissions/a-1", headers=setup["staff"]).status_code == 200
    assert client.post("/api/v1/submissions/a-1/cancel", headers=setup["staff"]).status_code == 403
    refused = db.audit_log.count_documents({"action": "submission.cancel", "result": "refused"})
    assert refused == 2

    r = client.post("/api/v1/submissions/a-1/cancel", headers=setup["alice"])
    assert r.status_code == 200 and r.json["state"] == "CANCELLED"
    assert [h["state"] for h in r.json["history"]] == ["PENDING", "CANCELLED"]
    again = client.post("/api/v1/submissions/a-1/cancel", headers=setup["alice"])
    assert again.status_code == 409


def test_list_is_mine_filtered_and_paginated(setup: dict[str, Any], db: Database[Any]) -> None:
    client = setup["client"]
    for i in range(3):
        client.post("/api/v1/submissions", json=task(uuid=f"l-{i}"), headers=setup["alice"])
    client.post("/api/v1/submissions", json=task(uuid="l-bob"), headers=setup["bob"])
    client.post("/api/v1/submissions/l-0/cancel", headers=setup["alice"])
    r = client.get("/api/v1/submissions?per_page=2", headers=setup["alice"])
    assert [s["uuid"] for s in r.json["items"]] == ["l-2", "l-1"] and r.json["has_more"]
    r = client.get("/api/v1/submissions?per_page=2&page=2", headers=setup["alice"])
    assert [s["uuid"] for s in r.json["items"]] == ["l-0"] and not r.json["has_more"]
    r = client.get("/api/v1/submissions?state=CANCELLED", headers=setup["alice"])
    assert [s["uuid"] for s in r.json["items"]] == ["l-0"]
    r = client.get("/api/v1/submissions?state=nope", headers=setup["alice"])
    assert r.status_code == 400
    r = client.get("/api/v1/submissions?cluster=other", headers=setup["alice"])
    assert r.json["items"] == []


def test_proxy_interface(setup: dict[str, Any], db: Database[Any]) -> None:
    client = setup["client"]
    proxy_task = {
        "slurm": {"job_name": "p"},
        "dirs": {"output": "/tmp/out"},
        "cmd": "echo",
        "params": ["x"],
        "uuid": "p-1",
        "cwd": "/tmp",
    }
    r = client.post(
        "/submit", json={"task": {**proxy_task, "username": "bob"}}, headers=setup["alice"]
    )
    assert r.status_code == 403
    r = client.post(
        "/submit", json={"task": {**proxy_task, "username": "alice"}}, headers=setup["alice"]
    )
    assert r.status_code == 202, r.json
    assert r.json["task_uuid"] == "p-1" and r.json["state"] == "PENDING"
    assert r.json["submission"]["dirs"] == ["/tmp/out"]
    r = client.get("/monitor/task_uuid/p-1", headers=setup["alice"])
    assert r.status_code == 200 and r.json["slurm_job_id"] is None
    assert client.get("/monitor/task_uuid/p-1", headers=setup["bob"]).status_code == 404
    r = client.get("/monitor/slurm_job_id/5?cluster=testcluster", headers=setup["alice"])
    assert r.status_code == 404
    # monitor someone else's job (known from the scraped jobs): 403
    db.jobs.insert_one(
        {
            "slurm": {
                "cluster_name": "testcluster",
                "job_id": 77,
                "username": "bob",
                "job_state": "RUNNING",
            },
            "cw": {"user": BOB},
        }
    )
    r = client.post(
        "/monitor",
        json={"task": {"slurm_job_id": 77, "cluster": "testcluster"}},
        headers=setup["alice"],
    )
    assert r.status_code == 403
    r = client.post(
        "/monitor",
        json={"task": {"slurm_job_id": 77, "cluster": "testcluster", "username": "alice"}},
        headers=setup["bob"],
    )
    assert r.status_code == 403  # task.username must be the caller's own
    r = client.post(
        "/monitor",
        json={"task": {"slurm_job_id": 77, "cluster": "testcluster"}},
        headers=setup["bob"],
    )
    assert r.status_code == 201 and r.json["state"] == "RUNNING"
    r = client.get("/monitor/slurm_job_id/77?cluster=testcluster", headers=setup["bob"])
    assert r.status_code == 200 and r.json["task_uuid"] == r.json["submission"]["uuid"]


def test_adopted_job_follows_the_scraped_state(setup: dict[str, Any], db: Database[Any]) -> None:
    client = setup["client"]
    db.jobs.insert_one(
        {
            "slurm": {
                "cluster_name": "testcluster",
                "job_id": 88,
                "username": "alice",
                "job_state": "PENDING",
            },
            "cw": {"user": ALICE},
        }
    )
    r = client.post(
        "/api/v1/monitor",
        json={"cluster": "testcluster", "job_id": 88, "uuid": "m-88"},
        headers=setup["alice"],
    )
    assert r.status_code == 201 and r.json["state"] == "SUBMITTED"
    again = client.post(
        "/api/v1/monitor", json={"cluster": "testcluster", "job_id": 88}, headers=setup["alice"]
    )
    assert again.status_code == 409
    for slurm_state, expected in [
        ("RUNNING", "RUNNING"),
        ("SUSPENDED", "SUSPENDED"),
        ("OUT_OF_MEMORY", "OUT_OF_MEMORY"),
    ]:
        db.jobs.update_one({"slurm.job_id": 88}, {"$set": {"slurm.job_state": slurm_state}})
        r = client.get("/api/v1/submissions/m-88", headers=setup["alice"])
        assert r.json["state"] == expected
    db.jobs.update_one({"slurm.job_id": 88}, {"$set": {"slurm.job_state": "RUNNING"}})
    assert (
        client.get("/api/v1/submissions/m-88", headers=setup["alice"]).json["state"]
        == "OUT_OF_MEMORY"
    )


def test_sync_states_and_retry_pending_leave_unreachable_ones_pending(
    setup: dict[str, Any], db: Database[Any]
) -> None:
    setup["client"].post("/api/v1/submissions", json=task(uuid="r-1"), headers=setup["alice"])
    db.submissions.update_one({"uuid": "r-1"}, {"$set": {"next_attempt": service._now(None)}})
    assert service.retry_pending(db, setup["config"]) == 0
    doc = db.submissions.find_one({"uuid": "r-1"})
    assert doc["state"] == "PENDING" and doc["attempts"] == 2
    assert service.sync_states(db, setup["config"]) == 0
