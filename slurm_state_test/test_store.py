"""The store against the real (embedded) database: diffs, events, leases, convergence."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.schema import Job, Node
from slurm_state import store

C = "testcluster"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def job(job_id: int, state: str = "PENDING", **kw: Any) -> Job:
    base: dict[str, Any] = {
        "cluster_name": C,
        "job_id": job_id,
        "name": f"job-{job_id}",
        "username": "alice" if job_id % 2 else "bob",
        "account": "research",
        "partition": "debug",
        "job_state": state,
        "submit_time": T0,
        "tres_requested": {"cpu": 1, "mem": "256M"},
    }
    if state != "PENDING":
        base.update(start_time=T0 + timedelta(seconds=5), nodes="node[001-002]", num_nodes=2)
    if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
        base.update(end_time=T0 + timedelta(minutes=1), exit_code=0 if state == "COMPLETED" else 3)
    base.update(kw)
    return Job(**base)


def run(db: Database[Any], jobs: list[Job], now: datetime = T0, **kw: Any) -> store.StoreCounts:
    return store.store_jobs(db, C, jobs, scrape_id=f"s-{now:%H%M%S}", now=now, **kw)


def stored(db: Database[Any], job_id: int) -> dict[str, Any]:
    doc = db.jobs.find_one({"slurm.cluster_name": C, "slurm.job_id": job_id})
    assert doc is not None
    return doc


def test_new_jobs_are_inserted_whole_with_mapped_users(db: Database[Any]) -> None:
    db.users.insert_one({"email": "alice@example.org", "account_keys": [f"{C}/alice", "other/al"]})
    counts = run(db, [job(1), job(2, "RUNNING"), job(3, "COMPLETED")], new_job_events=False)
    assert (counts.jobs_new, counts.jobs_updated, counts.jobs_unchanged) == (3, 0, 0)
    assert counts.events == 0  # first scrape: a backfill, nobody is notified
    one = stored(db, 1)
    assert one["slurm"]["name"] == "job-1" and one["slurm"]["job_state"] == "PENDING"
    assert one["cw"]["user"] == "alice@example.org"
    assert one["cw"]["first_seen"] == one["cw"]["last_seen"] == T0
    assert stored(db, 2)["cw"]["user"] is None  # bob has no Clockwork account
    assert stored(db, 2)["cw"]["node_names"] == ["node001", "node002"]
    assert db.job_events.estimated_document_count() == 0


def test_rescrape_of_unchanged_jobs_writes_nothing(db: Database[Any]) -> None:
    jobs = [job(1), job(2, "RUNNING"), job(3, "COMPLETED"), job(2500, "RUNNING")]
    run(db, jobs)
    assert db.job_digests.estimated_document_count() == 2  # ids 1-3 and 2500
    later = T0 + timedelta(minutes=5)
    counts = run(db, jobs, now=later)
    assert (counts.jobs_new, counts.jobs_updated, counts.jobs_unchanged) == (0, 0, 4)
    assert counts.events == 0
    for job_id in (1, 2, 3):  # not even last_seen: an unchanged job is not written
        assert stored(db, job_id)["cw"]["last_seen"] == T0
    # losing the digests only costs one full diff
    db.job_digests.drop()
    counts = run(db, jobs, now=later)
    assert (counts.jobs_updated, counts.jobs_unchanged) == (0, 4)
    assert db.job_digests.estimated_document_count() == 2
    # a job document deleted behind the store's back comes back once digests go too
    db.jobs.delete_one({"slurm.job_id": 3})
    db.job_digests.drop()
    assert run(db, jobs, now=later).jobs_new == 1


def test_changes_set_only_changed_fields_and_emit_events(db: Database[Any]) -> None:
    db.users.insert_one({"email": "alice@example.org", "account_keys": [f"{C}/alice"]})
    run(db, [job(1), job(3, "RUNNING")], new_job_events=False)
    # a field the store never writes survives an update: only $set of changed paths
    db.jobs.update_one({"slurm.job_id": 1}, {"$set": {"cw.marker": "kept", "slurm.comment": "x"}})
    later = T0 + timedelta(minutes=2)
    counts = run(db, [job(1, "RUNNING"), job(3, "FAILED", exit_code=3)], now=later)
    assert (counts.jobs_updated, counts.events) == (2, 2)
    one = stored(db, 1)
    assert one["slurm"]["job_state"] == "RUNNING"
    assert one["slurm"]["comment"] is None  # differs from the record: rewritten
    assert one["cw"]["marker"] == "kept"
    assert one["cw"]["first_seen"] == T0 and one["cw"]["last_seen"] == later
    assert one["cw"]["node_names"] == ["node001", "node002"]
    assert stored(db, 3)["slurm"]["exit_code"] == 3
    events = {e["job_id"]: e for e in db.job_events.find({"cluster_name": C})}
    assert events[1]["old_state"] == "PENDING" and events[1]["new_state"] == "RUNNING"
    assert events[1]["user"] == "alice@example.org"
    assert events[3]["old_state"] == "RUNNING" and events[3]["new_state"] == "FAILED"
    assert events[3]["user"] == "alice@example.org" and events[3]["delivered"] is False
    assert events[3]["time"] == later


def test_the_bucket_follows_the_state(db: Database[Any]) -> None:
    run(db, [job(1), job(2, "RUNNING"), job(3, "TIMEOUT")])
    assert [stored(db, i)["cw"]["bucket"] for i in (1, 2, 3)] == ["PENDING", "RUNNING", "FAILED"]
    later = T0 + timedelta(minutes=2)
    # a state change moves the job to its new bucket; a record stored before
    # buckets existed gets one with its next change
    db.jobs.update_one({"slurm.job_id": 3}, {"$unset": {"cw.bucket": ""}})
    run(db, [job(1, "SUSPENDED"), job(2, "COMPLETED"), job(3, "TIMEOUT", comment="x")], now=later)
    assert [stored(db, i)["cw"]["bucket"] for i in (1, 2, 3)] == ["RUNNING", "COMPLETED", "FAILED"]


def test_new_job_after_first_scrape_gives_event_without_old_state(db: Database[Any]) -> None:
    counts = run(db, [job(7, "COMPLETED")], new_job_events=True)
    assert counts.events == 1
    event = db.job_events.find_one({"job_id": 7})
    assert event["old_state"] is None and event["new_state"] == "COMPLETED"


def test_user_mapped_later_is_written(db: Database[Any]) -> None:
    run(db, [job(1, "COMPLETED")])
    db.users.insert_one({"email": "alice@example.org", "account_keys": [f"{C}/alice"]})
    counts = run(db, [job(1, "COMPLETED")])
    assert counts.jobs_updated == 1
    assert stored(db, 1)["cw"]["user"] == "alice@example.org"


def test_times_naive_or_with_microseconds_compare_equal(db: Database[Any]) -> None:
    precise = T0.replace(microsecond=123456)
    run(db, [job(1, submit_time=precise)])
    counts = run(db, [job(1, submit_time=precise)])
    assert counts.jobs_unchanged == 1
    naive = T0.replace(tzinfo=None)
    run(db, [job(2, submit_time=naive)])
    assert run(db, [job(2, submit_time=T0)]).jobs_unchanged == 1


def test_other_cluster_records_are_skipped(db: Database[Any]) -> None:
    counts = run(db, [job(1), job(2, cluster_name="elsewhere")])
    assert (counts.jobs_new, counts.skipped) == (1, 1)


def _state(db: Database[Any]) -> tuple[list[Any], list[Any]]:
    """Everything a scrape decides, without the ids and times of when it ran."""
    jobs = sorted(
        (d["slurm"]["job_id"], {k: v for k, v in d["slurm"].items()}, d["cw"].get("user"))
        for d in db.jobs.find({}, {"_id": 0})
    )
    events = sorted(
        (e["_id"], e["old_state"], e["new_state"]) for e in db.job_events.find({}, {"time": 0})
    )
    return jobs, events


def _crash_after(items: list[Job], n: int) -> Iterator[Job]:
    for i, item in enumerate(items):
        if i == n:
            raise RuntimeError("killed")
        yield item


def test_killed_store_rerun_converges_to_one_clean_run(
    db: Database[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [job(i, "PENDING") for i in range(1, 251)]
    after = [job(i, "COMPLETED" if i % 3 else "RUNNING") for i in range(1, 251)] + [
        job(i, "RUNNING") for i in range(1001, 1051)
    ]
    run(db, before, new_job_events=False)
    # killed between writing a batch's events and its jobs
    real_insert = store._insert_ignoring_duplicates

    def die_on_jobs(collection: Any, docs: list[dict[str, Any]]) -> int:
        if collection.name == "jobs" and docs:
            raise RuntimeError("killed")
        return real_insert(collection, docs)

    monkeypatch.setattr(store, "_insert_ignoring_duplicates", die_on_jobs)
    with pytest.raises(RuntimeError):
        run(db, after[200:], now=T0 + timedelta(minutes=1), batch_size=20)
    monkeypatch.undo()
    # killed after the first batch, in the middle of the stream
    with pytest.raises(RuntimeError):
        store.store_jobs(
            db,
            C,
            _crash_after(after, 170),
            scrape_id="x",
            now=T0 + timedelta(minutes=1),
            batch_size=50,
        )
    run(db, after, now=T0 + timedelta(minutes=2), batch_size=50)

    clean = db.client[db.name + "_clean"]
    try:
        from clockwork_core.db import ensure_indexes

        ensure_indexes(clean)
        run(clean, before, new_job_events=False)
        run(clean, after, now=T0 + timedelta(minutes=2))
        assert _state(db) == _state(clean)
        assert db.job_events.estimated_document_count() == 250 + 50
    finally:
        db.client.drop_database(clean.name)


# --------------------------------------------------------------------------- nodes


def test_nodes_upserted_with_only_changes(db: Database[Any]) -> None:
    n1 = Node(cluster_name=C, name="node001", state="idle", cpus=2, partitions=["debug"])
    n2 = Node(cluster_name=C, name="bigmem001", state="down", state_flags=["DRAIN"])
    assert store.store_nodes(db, C, [n1, n2], scrape_id="a", now=T0).nodes == 2
    n1.state, n1.alloc_cpus = "mixed", 1
    store.store_nodes(db, C, [n1, n2], scrape_id="b", now=T0 + timedelta(minutes=1))
    doc = db.nodes.find_one({"slurm.cluster_name": C, "slurm.name": "node001"})
    assert doc["slurm"]["state"] == "mixed" and doc["slurm"]["alloc_cpus"] == 1
    assert doc["cw"]["first_seen"] == T0 and doc["cw"]["last_scrape_id"] == "b"
    assert db.nodes.estimated_document_count() == 2


# --------------------------------------------------------------------------- lease, status


def test_lease_excludes_a_second_scraper_until_released_or_expired(db: Database[Any]) -> None:
    status = store.acquire_lease(db, C, "host-a:1:x", seconds=60, now=T0)
    assert status["lease_owner"] == "host-a:1:x"
    with pytest.raises(store.LeaseHeld) as held:
        store.acquire_lease(db, C, "host-b:2:y", seconds=60, now=T0 + timedelta(seconds=30))
    assert "host-a:1:x" in str(held.value)
    # expired: taken over
    store.acquire_lease(db, C, "host-b:2:y", seconds=60, now=T0 + timedelta(seconds=61))
    store.release_lease(db, C, "host-a:1:x")  # not the holder any more: no effect
    with pytest.raises(store.LeaseHeld):
        store.acquire_lease(db, C, "host-c:3:z", seconds=60, now=T0 + timedelta(seconds=62))
    store.release_lease(db, C, "host-b:2:y")
    store.acquire_lease(db, C, "host-c:3:z", seconds=60, now=T0 + timedelta(seconds=63))


def test_lease_of_a_dead_local_process_is_taken_over(db: Database[Any]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{store.new_lease_owner().split(':')[0]}:{proc.stdout.strip()}:dead"
    now = datetime.now(UTC)
    store.acquire_lease(db, C, dead, seconds=3600, now=now)
    store.release_local(dead)
    mine = store.new_lease_owner()
    assert store.acquire_lease(db, C, mine, seconds=60, now=now)["lease_owner"] == mine
    # a live holder of this process is respected
    with pytest.raises(store.LeaseHeld):
        store.acquire_lease(db, C, store.new_lease_owner(), seconds=60, now=now)


def test_watermark_moves_only_on_success(db: Database[Any]) -> None:
    owner = store.new_lease_owner()
    store.acquire_lease(db, C, owner, seconds=60, now=T0)
    ok = store.ScrapeOutcome(started=T0, duration_s=1.5, slurm_version="22.05", window_start=T0)
    ok.counts.jobs_new = 4
    store.finish_scrape(db, C, owner, ok)
    assert store.last_success(db, C) == T0
    later = T0 + timedelta(minutes=10)
    store.acquire_lease(db, C, owner, seconds=60, now=later)
    store.finish_scrape(db, C, owner, store.ScrapeOutcome(later, 0.2, error="ssh: refused"))
    status = db.cluster_status.find_one({"cluster_name": C})
    assert status["last_success"] == T0
    assert status["last_error"] == later and status["last_error_message"] == "ssh: refused"
    assert status["lease_owner"] is None
    assert set(status["counts"]) == {
        "jobs_new",
        "jobs_updated",
        "jobs_unchanged",
        "nodes",
        "events",
        "skipped",
    }


def test_store_queries_use_indexes(db: Database[Any]) -> None:
    queries = [
        (db.jobs, {"slurm.cluster_name": C, "slurm.job_id": {"$in": [1, 2]}}),
        (db.nodes, {"slurm.cluster_name": C, "slurm.name": {"$in": ["a"]}}),
        (db.users, {"account_keys": {"$in": [f"{C}/alice"]}}),
        (db.cluster_status, {"cluster_name": C, "lease_until": {"$lt": T0}}),
        (db.cluster_status, {"cluster_name": C, "lease_owner": "x"}),
    ]
    for collection, query in queries:
        plan = str(collection.find(query).explain()["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, (collection.name, plan)
