"""The database layer against the real server, over a socket with pymongo."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pymongo
import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from clockwork_core.db import COLLECTIONS, INDEXES, ensure_indexes, get_client
from clockwork_core.schema import Job, job_document


def test_talks_to_a_real_server_over_a_socket(mongo_uri: str) -> None:
    client = get_client(mongo_uri)
    assert client.admin.command("ping")["ok"] == 1.0
    assert client.address is not None  # a (host, port) pair: a real TCP connection
    assert get_client(mongo_uri) is client  # one client per process


def test_duplicate_natural_key_is_refused_by_the_unique_index(db: Database[Any]) -> None:
    now = datetime.now(UTC)
    doc = job_document(Job(cluster_name="c1", job_id=7), user=None, seen=now, scrape_id="s1")
    db.jobs.insert_one(dict(doc))
    with pytest.raises(pymongo.errors.DuplicateKeyError) as info:
        db.jobs.insert_one(dict(doc))
    assert info.value.code == 11000
    # the same job id on another cluster is another job
    other = job_document(Job(cluster_name="c2", job_id=7), user=None, seen=now, scrape_id="s1")
    db.jobs.insert_one(other)


@pytest.mark.parametrize(
    ("collection", "document"),
    [
        ("nodes", {"slurm": {"cluster_name": "c", "name": "n1"}}),
        ("users", {"email": "a@example.org"}),
        ("api_tokens", {"token_hash": "ab" * 32}),
        ("cluster_status", {"cluster_name": "c"}),
    ],
)
def test_unique_natural_keys(db: Database[Any], collection: str, document: dict) -> None:
    db[collection].insert_one(dict(document))
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        db[collection].insert_one(dict(document))


def test_ensure_indexes_is_idempotent(db: Database[Any]) -> None:
    ensure_indexes(db)
    ensure_indexes(db)
    for collection, indexes in INDEXES.items():
        names = set(db[collection].index_information())
        assert {index.document["name"] for index in indexes} <= names
    assert set(INDEXES) <= set(COLLECTIONS)


def test_datetimes_come_back_timezone_aware(db: Database[Any]) -> None:
    when = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
    db.audit_log.insert_one({"time": when})
    assert db.audit_log.find_one()["time"] == when


def test_jobs_stored_before_buckets_get_theirs_once(db: Database[Any]) -> None:
    from clockwork_core.db import BUCKETS_MIGRATION, backfill_job_buckets

    # the fixture's ensure_indexes ran on an empty database: a fresh one needs nothing
    assert db.migrations.find_one({"_id": BUCKETS_MIGRATION})["jobs"] == 0
    db.migrations.delete_many({})  # a database from before buckets
    db.jobs.insert_many(
        [
            {"slurm": {"cluster_name": "c", "job_id": i, "job_state": state}, "cw": {}}
            for i, state in enumerate(["RUNNING", "COMPLETING", "TIMEOUT", "REQUEUED", "COMPLETED"])
        ]
    )
    assert backfill_job_buckets(db) == 5
    buckets = [d["cw"]["bucket"] for d in db.jobs.find({}).sort("slurm.job_id", 1)]
    assert buckets == ["RUNNING", "RUNNING", "FAILED", "PENDING", "COMPLETED"]
    assert db.migrations.find_one({"_id": BUCKETS_MIGRATION})["jobs"] == 5
    # once done, never again (it would scan every state's jobs at each start)
    db.jobs.insert_one({"slurm": {"cluster_name": "c", "job_id": 9, "job_state": "FAILED"}})
    assert backfill_job_buckets(db) == 0
    ensure_indexes(db)
    assert "bucket" not in db.jobs.find_one({"slurm.job_id": 9}).get("cw", {})


def _index_names(db: Database[Any]) -> set[str]:
    return {name for collection in INDEXES for name in db[collection].index_information()}


def test_ensure_indexes_once_creates_them_once_then_trusts_its_marker(
    mongo_uri: str, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clockwork_core.db as core_db

    fresh = get_client(mongo_uri)[db_name]  # init-db never ran here
    created: list[str] = []
    real = core_db.ensure_indexes
    monkeypatch.setattr(core_db, "ensure_indexes", lambda d: created.append(d.name) or real(d))
    try:
        assert core_db.ensure_indexes_once(fresh) is True
        wanted = {i.document["name"] for indexes in INDEXES.values() for i in indexes}
        assert wanted <= _index_names(fresh) and created == [db_name]
        assert core_db.ensure_indexes_once(fresh) is False  # this process: a set lookup

        monkeypatch.setattr(core_db, "_indexed", set())  # another process: one marker read
        assert core_db.ensure_indexes_once(fresh) is False and created == [db_name]

        monkeypatch.setattr(core_db, "_indexed", set())  # a release that adds an index
        fresh.migrations.update_one({"_id": core_db.INDEXES_MIGRATION}, {"$set": {"version": "0"}})
        assert core_db.ensure_indexes_once(fresh) is True and created == [db_name, db_name]
    finally:
        get_client(mongo_uri).drop_database(db_name)


def test_the_web_app_ensures_the_indexes_at_its_first_request(
    config: Any, mongo_uri: str, db_name: str
) -> None:
    from clockwork_web import create_app

    fresh = get_client(mongo_uri)[db_name]  # init-db never ran here
    try:
        app = create_app(config, {"TESTING": True})
        assert _index_names(fresh) <= {"_id_"}  # building the app opens no connection
        app.test_client().get("/")
        assert {"job_key", "user_submit", "node_key", "email"} <= _index_names(fresh)
    finally:
        get_client(mongo_uri).drop_database(db_name)


def test_an_older_global_uuid_index_is_replaced_by_one_per_user(db: Database[Any]) -> None:
    """Databases made before uuids were per user lose the global unique index at init-db."""
    db.submissions.drop_indexes()
    db.submissions.create_index("uuid", unique=True, name="uuid")
    db.submissions.insert_one({"uuid": "x", "user_email": "a@example.org"})
    ensure_indexes(db)
    names = db.submissions.index_information()
    assert "uuid" not in names and names["user_uuid"]["unique"]
    db.submissions.insert_one({"uuid": "x", "user_email": "b@example.org"})
    with pytest.raises(DuplicateKeyError):
        db.submissions.insert_one({"uuid": "x", "user_email": "a@example.org"})
