"""Listings read as several equality queries per submit-time slice equal the plain query.

``jobs.service.window_plan`` splits the ``$in`` of an indexed field (a state
bucket, several clusters) into one query each and checks the other clauses
here; these pages must be exactly what one plain ``find`` returns, page after
page, however the slices fall (fresh width memory and remembered widths alike).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.schema import Job, job_document
from clockwork_web.auth.access import User
from clockwork_web.jobs import service
from clockwork_web.jobs.query import build_job_query, parse_job_filters

NOW = datetime.now(UTC).replace(microsecond=0)
CLUSTERS = ["c1", "c2", "c3"]
USERS = [f"u{i}@example.org" for i in range(3)]
STATES = ["RUNNING", "PENDING", "COMPLETING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"]
ADMIN = User("admin@example.org", "Admin", "enabled", ("admin",), {})


def _user(email: str, clusters: list[str]) -> User:
    name = email.split("@")[0]
    return User(email, email, "enabled", ("user",), {c: name for c in clusters})


@pytest.fixture
def mixed_jobs(db: Database[Any]) -> Database[Any]:
    rng = random.Random(7)
    docs = []
    for i in range(400):
        age = timedelta(minutes=rng.choice([2, 20, 200, 2000, 20000, 200000]) * rng.random())
        submit = None if i % 53 == 0 else (NOW - age).replace(second=0)
        user = i % 3
        job = Job(
            cluster_name=CLUSTERS[(i // 3) % 3],
            job_id=1000 + i,
            username=f"u{user}",
            name=rng.choice(["train", "eval", "Train-big", "sweep"]),
            job_state=rng.choice(STATES),
            partition=rng.choice(["long", "main"]),
            submit_time=submit,
        )
        docs.append(job_document(job, user=USERS[user], seen=NOW, scrape_id="t"))
    db.jobs.insert_many(docs)
    return db


CASES = [
    (ADMIN, {"state": ["RUNNING"]}),
    (ADMIN, {"state": ["RUNNING"], "cluster": ["c2"]}),
    (ADMIN, {"state": ["FAILED"], "cluster": ["c1", "c3"]}),
    (ADMIN, {"state": ["COMPLETED"], "partition": ["long"]}),
    (ADMIN, {"user": ["u1@example.org"], "state": ["FAILED"]}),
    (ADMIN, {"cluster": ["c1"], "submitted_before": [(NOW - timedelta(hours=2)).isoformat()]}),
    (_user(USERS[0], CLUSTERS), {}),
    (_user(USERS[0], CLUSTERS), {"state": ["RUNNING"]}),
    (_user(USERS[1], CLUSTERS), {"state": ["RUNNING"], "cluster": ["c1"]}),
    (_user(USERS[1], CLUSTERS), {"state": ["FAILED", "PENDING"], "name": ["train"]}),
    (_user(USERS[2], CLUSTERS[:2]), {}),
    (_user(USERS[2], CLUSTERS[:2]), {"state": ["COMPLETED"]}),
    (
        _user(USERS[2], CLUSTERS),
        {"state": ["FAILED"], "submitted_after": [(NOW - timedelta(days=30)).isoformat()]},
    ),
]


@pytest.mark.parametrize(("who", "params"), CASES)
@pytest.mark.parametrize("per_page", [7, 50])
def test_split_pages_equal_the_plain_query(
    mixed_jobs: Database[Any], who: User, params: dict[str, list[str]], per_page: int
) -> None:
    db = mixed_jobs
    for _round in range(2):  # the second round starts from the remembered widths
        shown: list[int] = []
        for page in range(1, 100):
            args = {**params, "page": [str(page)], "per_page": [str(per_page)]}
            filters = parse_job_filters(args)
            result = service.list_jobs(db, filters, who, known_clusters=CLUSTERS, now=NOW)
            query, sort = build_job_query(filters, who, known_clusters=CLUSTERS)
            expected = list(db.jobs.find(query).sort(sort).skip(filters.skip).limit(per_page))
            assert [(j["slurm"]["cluster_name"], j["slurm"]["job_id"]) for j in result.items] == [
                (j["slurm"]["cluster_name"], j["slurm"]["job_id"]) for j in expected
            ], f"page {page}"
            shown += [j["slurm"]["job_id"] for j in result.items]
            if not result.has_next:
                break
        assert len(shown) == len(set(shown)) == db.jobs.count_documents(query)
    assert service.window_plan(query, sort) is not None


def test_plan_splits_buckets_on_the_users_index() -> None:
    sort = [("slurm.submit_time", -1), ("slurm.job_id", -1)]
    query = {"cw.user": "a@b", "cw.bucket": {"$in": ["A", "B"]}, "slurm.partition": "p"}
    plan = service.window_plan(query, sort)
    assert plan is not None
    assert plan.parts == (
        {"cw.user": "a@b", "cw.bucket": "A"},
        {"cw.user": "a@b", "cw.bucket": "B"},
    )
    assert plan.residual == {"slurm.partition": "p"} and plan.residual_here
    # with a cluster: the index that also holds the cluster, its clause in the parts
    plan = service.window_plan({**query, "slurm.cluster_name": "c1"}, sort)
    assert plan is not None
    assert plan.parts == tuple(
        {"cw.bucket": b, "cw.user": "a@b", "slurm.cluster_name": "c1"} for b in ("A", "B")
    )
    assert plan.residual == {"slurm.partition": "p"}


def test_plan_reads_a_bucket_once_and_checks_its_states_here() -> None:
    query = {"cw.user": "a@b", "cw.bucket": "FAILED", "slurm.job_state": "TIMEOUT"}
    plan = service.window_plan(query, [("slurm.submit_time", -1), ("slurm.job_id", -1)])
    assert plan is not None
    assert plan.parts == ({"cw.user": "a@b", "cw.bucket": "FAILED"},)
    assert plan.residual == {"slurm.job_state": "TIMEOUT"} and plan.residual_here


def test_plan_leaves_selective_staff_queries_alone() -> None:
    sort = [("slurm.submit_time", -1), ("slurm.job_id", -1)]
    assert service.window_plan({"slurm.job_id": {"$in": [1, 2]}}, sort) is None
    assert service.window_plan({"cw.user": "a@b"}, [("slurm.job_id", -1)]) is None
    plan = service.window_plan({}, [("slurm.submit_time", -1)])
    assert plan is not None and plan.parts == ({},) and not plan.residual_here


@pytest.mark.parametrize("states", [["RUNNING", "PENDING", "COMPLETING"], ["TIMEOUT", "CANCELLED"]])
@pytest.mark.parametrize("limit", [3, 26, 500])
def test_one_range_per_slice_equals_the_plain_query(
    mixed_jobs: Database[Any], states: list[str], limit: int
) -> None:
    """``max_split=1`` (the dashboard's lists), then split once a listing ran out."""
    db = mixed_jobs
    query = {"cw.user": USERS[1], "slurm.job_state": {"$in": states}}
    sort = [("slurm.submit_time", -1), ("slurm.job_id", -1)]
    expected = [d["slurm"]["job_id"] for d in db.jobs.find(query).sort(sort).limit(limit)]
    for _round in range(3):
        found = service.find_jobs(db, query, sort, limit=limit, now=NOW, max_split=1)
        assert [d["slurm"]["job_id"] for d in found] == expected
        assert all("_id" not in d and "last_scrape_id" not in d["cw"] for d in found)
