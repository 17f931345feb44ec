"""Newest-first listings read through submit-time windows return exactly the true pages."""

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
USERS = [f"u{i}@example.org" for i in range(4)]
ADMIN = User("admin@example.org", "Admin", "enabled", ("admin",), {})


@pytest.fixture
def recent_jobs(db: Database[Any]) -> Database[Any]:
    rng = random.Random(4)
    docs = []
    for i in range(240):
        # dense in the last hours, sparse further back, some identical times, a few unknown
        age = timedelta(minutes=rng.choice([1, 5, 30, 90, 600, 3000, 20000, 90000]) * rng.random())
        submit = None if i % 97 == 0 else (NOW - age).replace(second=0)
        job = Job(
            cluster_name="testcluster",
            job_id=i,
            username=f"u{i % 4}",
            job_state=rng.choice(["RUNNING", "PENDING", "COMPLETED", "FAILED"]),
            submit_time=submit,
        )
        docs.append(job_document(job, user=USERS[i % 4], seen=NOW, scrape_id="t"))
    db.jobs.insert_many(docs)
    return db


def _user(email: str) -> User:
    return User(email, email, "enabled", ("user",), {"testcluster": email.split("@")[0]})


@pytest.mark.parametrize(
    ("who", "params"),
    [
        (ADMIN, {}),
        (ADMIN, {"state": ["RUNNING"]}),
        (ADMIN, {"state": ["FAILED"], "cluster": ["testcluster"]}),
        (ADMIN, {"submitted_after": [(NOW - timedelta(days=2)).isoformat()]}),
        (ADMIN, {"submitted_before": [(NOW - timedelta(hours=1)).isoformat()]}),
        (
            _user(USERS[3]),
            {
                "submitted_after": [(NOW - timedelta(days=20)).isoformat()],
                "submitted_before": [(NOW - timedelta(minutes=20)).isoformat()],
            },
        ),
        (_user(USERS[1]), {}),
        (_user(USERS[2]), {"state": ["COMPLETED"]}),
    ],
)
@pytest.mark.parametrize("per_page", [16, 50])
def test_windowed_pages_equal_the_plain_query(
    recent_jobs: Database[Any], who: User, params: dict[str, list[str]], per_page: int
) -> None:
    db = recent_jobs
    shown: list[int] = []
    for page in range(1, 200):
        args = {**params, "page": [str(page)], "per_page": [str(per_page)]}
        filters = parse_job_filters(args)
        result = service.list_jobs(db, filters, who, known_clusters=["testcluster"], now=NOW)
        query, sort = build_job_query(filters, who, known_clusters=["testcluster"])
        expected = list(db.jobs.find(query).sort(sort).skip(filters.skip).limit(per_page))
        assert [j["slurm"]["job_id"] for j in result.items] == [
            j["slurm"]["job_id"] for j in expected
        ]
        shown += [j["slurm"]["job_id"] for j in result.items]
        if not result.has_next:
            break
    assert len(shown) == len(set(shown)) == db.jobs.count_documents(query)
    assert service.window_plan(query, sort) is not None  # the windows were exercised
