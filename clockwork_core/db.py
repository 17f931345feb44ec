"""The database: one MongoClient per process, the collections, their indexes.

The embedded SecantusDB server (tests, demo) and a real MongoDB are used the
same way, through pymongo. The embedded server does not plan filters wrapped
in a top-level ``$and``/``$or`` on an index, so every query the project issues
is written flat (``$in`` rather than ``$or`` on one field) and has an index
below; ``clockwork_web_test/test_query_plans.py`` fails on a collection scan.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from clockwork_core.config import DatabaseConfig

#: Every collection Clockwork uses, with what it holds.
COLLECTIONS: dict[str, str] = {
    "jobs": "one document per Slurm job: {slurm: schema.Job, cw: Clockwork's own}",
    "nodes": "one document per Slurm node: {slurm: schema.Node, cw: ...}",
    "users": "Clockwork accounts: email, roles, status, cluster accounts, settings",
    "migrations": "one document per one-time data migration that has run (its _id)",
    "api_tokens": "API tokens, stored as SHA-256 digests",
    "auth_states": "OpenID Connect login states already used (replays are refused)",
    "job_user_props": "the key/value props a job's owner attached to it",
    "submissions": "jobs submitted through Clockwork, and jobs adopted for monitoring",
    "job_events": "the outbox of job state changes the notifier reads",
    "deliveries": "one record per (event, channel) notification sent or tried",
    "cluster_status": "per cluster: last scrape, errors, counts, the scrape lease",
    "audit_log": "who did what, from where, with what result",
    "gpus": "GPU models and their specs",
    "job_digests": "per 1,000 job ids, a fingerprint of each job, so a re-scrape skips unchanged jobs",
    "auth_failures": "failed authentications per (address, claimed identity) and time window",
}

_ASC, _DESC = ASCENDING, DESCENDING

#: collection -> indexes. Natural keys are unique; the rest serve the queries
#: of the scraper, the REST API and the pages (each query has one here).
INDEXES: dict[str, list[IndexModel]] = {
    "jobs": [
        IndexModel(
            [("slurm.cluster_name", _ASC), ("slurm.job_id", _ASC)],
            unique=True,
            name="job_key",
        ),
        IndexModel([("slurm.submit_time", _DESC)], name="submit_time"),
        IndexModel([("cw.user", _ASC), ("slurm.submit_time", _DESC)], name="user_submit"),
        # state filters go through the state's bucket (cw.bucket): one equality
        # per bucket instead of one query per state (a "running" listing read
        # eight index ranges, seven of them nearly empty)
        IndexModel(
            [("cw.user", _ASC), ("cw.bucket", _ASC), ("slurm.submit_time", _DESC)],
            name="user_bucket_submit",
        ),
        # "my running jobs on cluster X", the usual search of a multi-cluster user
        IndexModel(
            [
                ("cw.user", _ASC),
                ("slurm.cluster_name", _ASC),
                ("cw.bucket", _ASC),
                ("slurm.submit_time", _DESC),
            ],
            name="user_cluster_bucket_submit",
        ),
        IndexModel([("cw.bucket", _ASC), ("slurm.submit_time", _DESC)], name="bucket_submit"),
        # one state (TIMEOUT, say) and the listing sorted by state
        IndexModel([("slurm.job_state", _ASC), ("slurm.submit_time", _DESC)], name="state_submit"),
        IndexModel(
            [("slurm.cluster_name", _ASC), ("cw.bucket", _ASC), ("slurm.submit_time", _DESC)],
            name="cluster_bucket_submit",
        ),
        IndexModel([("slurm.username", _ASC), ("slurm.submit_time", _DESC)], name="username"),
        # re-mapping a cluster account's jobs when a user's accounts change
        IndexModel([("slurm.cluster_name", _ASC), ("slurm.username", _ASC)], name="account"),
        # an array's tasks, and the few around one task (the job page)
        IndexModel(
            [("slurm.array_job_id", _ASC), ("slurm.array_task_id", _ASC)], name="array_task"
        ),
        IndexModel([("slurm.end_time", _DESC)], name="end_time"),
        IndexModel([("cw.user", _ASC), ("slurm.end_time", _DESC)], name="user_end_time"),
        IndexModel([("cw.node_names", _ASC), ("slurm.job_state", _ASC)], name="node_jobs"),
        # REST API: job ids without a cluster, and the sortable columns of an
        # unfiltered staff listing; partition/account filters (test_query_plans)
        IndexModel([("slurm.job_id", _ASC)], name="job_id"),
        IndexModel([("slurm.start_time", _DESC)], name="start_time"),
        IndexModel([("slurm.name", _ASC)], name="job_name"),
        IndexModel(
            [("slurm.partition", _ASC), ("slurm.submit_time", _DESC)], name="partition_submit"
        ),
        IndexModel([("slurm.account", _ASC), ("slurm.submit_time", _DESC)], name="account_submit"),
    ],
    "nodes": [
        IndexModel(
            [("slurm.cluster_name", _ASC), ("slurm.name", _ASC)], unique=True, name="node_key"
        ),
        IndexModel([("slurm.state", _ASC)], name="node_state"),
    ],
    "users": [
        IndexModel([("email", _ASC)], unique=True, name="email"),
        IndexModel([("account_keys", _ASC)], name="account_keys"),
    ],
    "api_tokens": [
        IndexModel([("token_hash", _ASC)], unique=True, name="token_hash"),
        IndexModel([("user_email", _ASC), ("created_at", _DESC)], name="user_tokens"),
    ],
    "auth_states": [
        IndexModel([("state", _ASC)], unique=True, name="state"),
        IndexModel([("used_at", _ASC)], name="used_at"),
    ],
    "job_user_props": [
        IndexModel(
            [("cluster_name", _ASC), ("job_id", _ASC), ("user_email", _ASC)],
            unique=True,
            name="props_key",
        ),
        IndexModel([("user_email", _ASC), ("prop_keys", _ASC)], name="user_prop_keys"),
    ],
    "submissions": [
        # a uuid is unique per user: another user's uuid is not confirmed by a 409
        IndexModel([("user_email", _ASC), ("uuid", _ASC)], unique=True, name="user_uuid"),
        # optimistic state changes: {user_email, uuid, state} (the embedded
        # planner needs every key); staff looking up anyone's uuid, newest first
        IndexModel([("user_email", _ASC), ("uuid", _ASC), ("state", _ASC)], name="user_uuid_state"),
        IndexModel([("uuid", _ASC), ("created_at", _DESC)], name="uuid_created"),
        IndexModel([("user_email", _ASC), ("created_at", _DESC)], name="user_submissions"),
        IndexModel([("cluster_name", _ASC), ("job_id", _ASC)], name="submission_job"),
        IndexModel([("state", _ASC), ("updated_at", _ASC)], name="submission_state"),
        IndexModel([("state", _ASC), ("next_attempt", _ASC)], name="submission_retry"),
        # the list filters (state, cluster) of GET /api/v1/submissions
        IndexModel(
            [("user_email", _ASC), ("state", _ASC), ("created_at", _DESC)], name="user_state"
        ),
        IndexModel(
            [("user_email", _ASC), ("cluster_name", _ASC), ("created_at", _DESC)],
            name="user_cluster",
        ),
        IndexModel(
            [
                ("user_email", _ASC),
                ("cluster_name", _ASC),
                ("state", _ASC),
                ("created_at", _DESC),
            ],
            name="user_cluster_state",
        ),
    ],
    "job_events": [
        IndexModel([("delivered", _ASC), ("time", _ASC)], name="pending_events"),
        IndexModel([("cluster_name", _ASC), ("job_id", _ASC), ("time", _ASC)], name="job"),
    ],
    "deliveries": [
        IndexModel([("event_id", _ASC), ("channel", _ASC)], unique=True, name="delivery_key"),
        # the notifier's claims: a due pending delivery, a stale sending one
        IndexModel(
            [("event_id", _ASC), ("channel", _ASC), ("status", _ASC), ("next_attempt", _ASC)],
            name="delivery_claim",
        ),
        IndexModel(
            [("event_id", _ASC), ("channel", _ASC), ("status", _ASC), ("lease_until", _ASC)],
            name="delivery_stale",
        ),
        IndexModel([("status", _ASC), ("next_attempt", _ASC)], name="retry_queue"),
    ],
    "cluster_status": [
        IndexModel([("cluster_name", _ASC)], unique=True, name="cluster_key"),
        # the scraper's lease: take (expired) and release/finish (by owner)
        IndexModel([("cluster_name", _ASC), ("lease_until", _ASC)], name="lease_until"),
        IndexModel([("cluster_name", _ASC), ("lease_owner", _ASC)], name="lease_owner"),
    ],
    "audit_log": [
        IndexModel([("time", _DESC)], name="time"),
        IndexModel([("user_email", _ASC), ("time", _DESC)], name="user_time"),
    ],
    "gpus": [
        IndexModel([("name", _ASC)], unique=True, name="gpu_name"),
    ],
    # failures are looked up by _id; each window document expires with its window
    "auth_failures": [
        IndexModel([("expires_at", _ASC)], expireAfterSeconds=0, name="expires_at"),
    ],
}

_clients: dict[tuple[int, str], pymongo.MongoClient] = {}
_lock = threading.Lock()


def get_client(uri: str, timeout_ms: int = 5000) -> pymongo.MongoClient:
    """The process's client for ``uri`` (created on first use, again after a fork)."""
    key = (os.getpid(), uri)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = pymongo.MongoClient(
                uri,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                tz_aware=True,
                appname="clockwork",
            )
            _clients[key] = client
        return client


def get_database(config: DatabaseConfig, name: str | None = None) -> Database[Any]:
    """The Clockwork database described by ``config``."""
    client = get_client(config.uri, config.timeout_ms)
    return client[name or config.name]


def close_clients() -> None:
    """Close every client this process opened (tests, clean shutdown)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


#: Indexes of older versions that a current one replaces (dropped by ensure_indexes).
REPLACED_INDEXES: dict[str, list[str]] = {"submissions": ["uuid", "uuid_state"]}


def ensure_indexes(db: Database[Any]) -> None:
    """Create the collections' indexes and bring older data up to date; safe to
    run again at every start.

    Records :func:`indexes_version` in ``migrations`` afterwards, so that
    :func:`ensure_indexes_once` can tell with one read that nothing is missing.
    """
    backfill_job_buckets(db)
    for collection, names in REPLACED_INDEXES.items():
        existing = db[collection].index_information()
        for name in names:
            if name in existing:
                db[collection].drop_index(name)
    for collection, indexes in INDEXES.items():
        db[collection].create_indexes(indexes)
    db.migrations.update_one(
        {"_id": INDEXES_MIGRATION},
        {"$set": {"version": indexes_version(), "done_at": datetime.now(UTC)}},
        upsert=True,
    )


#: The ``migrations`` document that says which :data:`INDEXES` were created.
INDEXES_MIGRATION = "indexes"


def indexes_version() -> str:
    """A digest of :data:`INDEXES`: adding or changing an index changes it."""
    spec = sorted(
        (collection, repr(sorted(index.document.items())))
        for collection, indexes in INDEXES.items()
        for index in indexes
    )
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


#: (process, servers the client reaches, database name) of the databases already checked.
_indexed: set[tuple[int, Any, str]] = set()
_indexed_lock = threading.Lock()


def ensure_indexes_once(db: Database[Any]) -> bool:
    """Make sure ``db`` has every index, cheaply enough to call before each use.

    A database where ``init-db`` never ran has no unique natural keys (a
    re-scrape then stores duplicates) and every read scans: 33,000 jobs took
    17 minutes to scrape. The first call of a process for a database reads one
    marker document and creates the indexes only when it is missing or older
    than :data:`INDEXES`; later calls are a set lookup. Returns True when the
    indexes were created by this call. Database errors propagate (and the next
    call tries again).
    """
    key = (os.getpid(), db.client.eq_props(), db.name)
    if key in _indexed:
        return False
    with _indexed_lock:
        if key in _indexed:
            return False
        marker = db.migrations.find_one({"_id": INDEXES_MIGRATION}, {"version": 1})
        created = marker is None or marker.get("version") != indexes_version()
        if created:
            ensure_indexes(db)
        _indexed.add(key)
        return created


#: The ``migrations`` document that says every job has its ``cw.bucket``.
BUCKETS_MIGRATION = "job_buckets"


def backfill_job_buckets(db: Database[Any]) -> int:
    """Give jobs stored before ``cw.bucket`` existed their bucket, once.

    Runs before the indexes are created, one state at a time, so that a
    database still holding the older per-state indexes reads each state
    through them. Returns the number of jobs updated.
    """
    from clockwork_core.schema import JOB_STATES, state_bucket

    if db.migrations.find_one({"_id": BUCKETS_MIGRATION}) is not None:
        return 0
    updated = 0
    for state in sorted(JOB_STATES):
        result = db.jobs.update_many(
            {"slurm.job_state": state}, {"$set": {"cw.bucket": state_bucket(state)}}
        )
        updated += result.modified_count
    db.migrations.update_one(
        {"_id": BUCKETS_MIGRATION},
        {"$set": {"done_at": datetime.now(UTC), "jobs": updated}},
        upsert=True,
    )
    return updated
