"""Every query of submissions and the notifier is planned on an index (no COLLSCAN)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.database import Database

NOW = datetime.now(UTC)

QUERIES: list[tuple[str, dict[str, Any], list[tuple[str, int]] | None]] = [
    ("submissions", {"user_email": "a", "uuid": "u"}, None),
    ("submissions", {"user_email": "a", "uuid": "u", "state": "PENDING"}, None),
    ("submissions", {"uuid": "u"}, [("created_at", -1)]),
    ("submissions", {"user_email": "a"}, [("created_at", -1)]),
    ("submissions", {"user_email": "a", "state": {"$in": ["A", "B"]}}, [("created_at", -1)]),
    ("submissions", {"user_email": "a", "cluster_name": "c"}, [("created_at", -1)]),
    (
        "submissions",
        {"user_email": "a", "state": {"$in": ["A"]}, "cluster_name": "c"},
        [("created_at", -1)],
    ),
    ("submissions", {"cluster_name": "c", "job_id": 1}, None),
    ("submissions", {"state": {"$in": ["RUNNING", "SUBMITTED"]}}, None),
    ("submissions", {"state": "PENDING", "next_attempt": {"$lte": NOW}}, [("next_attempt", 1)]),
    ("deliveries", {"event_id": "e"}, None),
    ("deliveries", {"event_id": "e", "channel": "email"}, None),
    (
        "deliveries",
        {"event_id": "e", "channel": "email", "status": "pending", "next_attempt": {"$lte": NOW}},
        None,
    ),
    (
        "deliveries",
        {"event_id": "e", "channel": "email", "status": "sending", "lease_until": {"$lt": NOW}},
        None,
    ),
    ("job_events", {"delivered": False}, [("time", 1)]),
    ("jobs", {"slurm.cluster_name": "c", "slurm.job_id": 1}, None),
    ("users", {"email": "a"}, None),
]


@pytest.mark.parametrize(("collection", "query", "sort"), QUERIES)
def test_query_uses_an_index(
    db: Database[Any], collection: str, query: dict[str, Any], sort: Any
) -> None:
    cursor = db[collection].find(query)
    if sort:
        cursor = cursor.sort(sort)
    plan = json.dumps(cursor.explain(), default=str)
    assert "COLLSCAN" not in plan, plan[:500]
