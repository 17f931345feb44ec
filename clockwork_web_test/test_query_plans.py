"""Every query the REST API issues is served by an index: a project-wide guard.

The services run against a few thousand generated jobs through a client that
records every command it sends (pymongo command monitoring), so what is
checked is exactly what the API issues, window queries and counts included.
Each recorded ``find``/``aggregate``/``count`` filter is then ``explain()``-ed
and the test fails on a collection scan.

How a plan is read on the embedded server (clause by clause when the whole
filter explains as a scan) is described in ``test_common.query_plans``.

To cover a new query: add a row to CASES (description, who, call).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.auth.access import User
from clockwork_web.clusters import service as clusters
from clockwork_web.jobs import service as jobs
from clockwork_web.jobs.query import SORT_FIELDS, build_job_query, parse_job_filters
from clockwork_web.nodes import service as nodes
from clockwork_web.stats import service as stats
from test_common.query_plans import CommandRecorder, effective_plan, is_embedded, queries_of

#: Commands allowed to scan, with why.
ALLOWED_SCANS = {
    # estimated_document_count of an unfiltered staff listing: SecantusDB counts by
    # reading the collection; jobs.service caches that total for COUNT_TTL_S.
    ("jobs", "count", "{}"),
    # the node count of an unfiltered staff listing: one document per node, a
    # few thousand at most, counted without decoding them
    ("nodes", "count", "{}"),
}

#: Clauses no index can serve: a case-insensitive substring of the job name
#: (SecantusDB has no text index). A staff-wide search on the name alone reads
#: its page through submit-time windows, but its total is counted by a scan
#: (then cached by jobs.service for COUNT_TTL_S).
UNINDEXABLE_ALONE = {"slurm.name"}


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def plans_db(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A module-wide database with 3,000 generated jobs, through a recording client."""
    from clockwork_core.db import ensure_indexes
    from test_common.datagen import load_dataset

    recorder = CommandRecorder()
    client: MongoClient = MongoClient(mongo_uri, event_listeners=[recorder], tz_aware=True)
    name = "cw_test_plans"
    client.drop_database(name)
    db = client[name]
    ensure_indexes(db)
    dataset = load_dataset(db, n_jobs=3000, n_users=30, seed=5, clusters=["testcluster"])
    yield db, recorder, dataset, is_embedded(db)
    client.drop_database(name)
    client.close()


def _user(db: Database[Any], email: str) -> User:
    return User.from_document(db.users.find_one({"email": email}))


def _partial_user(db: Database[Any], all_clusters: list[str]) -> User:
    """A user lacking an account on some cluster (so a cluster clause is needed)."""
    for doc in db.users.find({}).limit(100):
        accounts = doc.get("cluster_accounts") or {}
        if "user" in doc["roles"] and 2 <= len(accounts) < len(all_clusters):
            return User.from_document(doc)
    pytest.skip("the data set has no user with a partial set of cluster accounts")


Call = Callable[[Database[Any], dict[str, Any]], Any]


def listing(**params: str) -> Call:
    def call(db: Database[Any], ctx: dict[str, Any]) -> Any:
        args = {k: [v] for k, v in params.items()}
        return jobs.list_jobs(
            db, parse_job_filters(args), ctx["who"], known_clusters=ctx["clusters"], now=ctx["now"]
        )

    return call


def legacy_list(**params: str) -> Call:
    def call(db: Database[Any], ctx: dict[str, Any]) -> Any:
        filters = parse_job_filters({k: [v] for k, v in params.items()})
        query, sort = build_job_query(filters, ctx["who"], known_clusters=ctx["clusters"])
        return list(db.jobs.find(query).sort(sort).limit(100))

    return call


def one_job(db: Database[Any], ctx: dict[str, Any]) -> Any:
    mine = ctx["mine"]
    jobs.get_job(db, mine["cluster_name"], mine["job_id"], ctx["who"])
    jobs.update_props(
        db, mine["cluster_name"], mine["job_id"], ctx["who"], {"k": "v"}, max_bytes=2048
    )
    jobs.delete_props(db, mine["cluster_name"], mine["job_id"], ctx["who"], ["k"], max_bytes=2048)


def node_listing(**params: str) -> Call:
    def call(db: Database[Any], ctx: dict[str, Any]) -> Any:
        filters = nodes.parse_node_filters({k: [v] for k, v in params.items()})
        nodes.list_nodes(db, filters, ctx["who"])
        first = db.nodes.find_one({}, {"slurm.cluster_name": 1, "slurm.name": 1})
        nodes.get_node(db, first["slurm"]["cluster_name"], first["slurm"]["name"], ctx["who"])

    return call


def cluster_listing(db: Database[Any], ctx: dict[str, Any]) -> Any:
    return clusters.list_clusters(db, ctx["config"], ctx["who"])


def usage(group_by: str) -> Call:
    def call(db: Database[Any], ctx: dict[str, Any]) -> Any:
        end = ctx["now"]
        return stats.usage(
            db, ctx["who"], group_by=group_by, start=end - timedelta(days=30), end=end
        )

    return call


WHO = ("student", "partial", "admin")

CASES: list[tuple[str, str, Call]] = [
    ("list, default", "student", listing()),
    ("list, state bucket", "student", listing(state="RUNNING")),
    ("list, state, 50 per page", "student", listing(state="COMPLETED", per_page="50")),
    ("list, one cluster", "student", listing(cluster="testcluster")),
    ("list, cluster + state", "student", listing(cluster="testcluster", state="FAILED")),
    ("list, job ids", "student", listing(job_id="1,2,3")),
    ("list, array", "student", listing(array_job_id="5")),
    ("list, name", "student", listing(name="train")),
    ("list, partition", "student", listing(partition="long")),
    ("list, account", "student", listing(account="def-x")),
    ("list, period", "student", listing(submitted_after="2020-01-01")),
    ("list, props", "student", listing(prop_name="k", prop_value="v")),
    ("list, page 3", "student", listing(page="3", per_page="20")),
    ("list, default", "partial", listing()),
    ("list, state", "partial", listing(state="PENDING")),
    ("list, name + state", "partial", listing(state="RUNNING", name="a")),
    ("list, unfiltered", "admin", listing()),
    ("list, unfiltered, page 4", "admin", listing(page="4")),
    ("list, oldest first", "admin", listing(order="asc")),
    ("list, state", "admin", listing(state="RUNNING")),
    ("list, cluster", "admin", listing(cluster="testcluster")),
    ("list, cluster + state", "admin", listing(cluster="testcluster", state="COMPLETED")),
    ("list, user", "admin", listing(user="student@example.org")),
    ("list, user + state", "admin", listing(user="student@example.org", state="FAILED")),
    ("list, username", "admin", listing(user="student")),
    ("list, job ids", "admin", listing(job_id="10,11")),
    ("list, array", "admin", listing(array_job_id="10")),
    ("list, name", "admin", listing(name="train")),
    ("list, partition", "admin", listing(partition="long")),
    ("list, account", "admin", listing(account="def-x")),
    ("list, period", "admin", listing(submitted_after="2020-01-01")),
    ("list, period, by start", "admin", listing(submitted_after="2020-01-01", sort="start_time")),
    ("list, props", "admin", listing(prop_name="k")),
    *[
        (f"list, sort {key} {order}", who, listing(sort=key, order=order))
        for key in SORT_FIELDS
        for who in ("student", "admin")
        for order in ("asc", "desc")
    ],
    ("original list", "student", legacy_list()),
    ("original list, states", "student", legacy_list(state="RUNNING,PENDING")),
    ("original one job", "student", legacy_list(job_id="12")),
    ("original one job", "admin", legacy_list(job_id="12")),
    ("one job + props", "student", one_job),
    ("nodes", "student", node_listing()),
    ("nodes, state", "partial", node_listing(state="idle")),
    ("nodes", "admin", node_listing()),
    ("nodes, cluster + state + name", "admin", node_listing(cluster="x", state="idle", name="a")),
    ("clusters", "student", cluster_listing),
    ("clusters", "admin", cluster_listing),
    *[(f"usage by {g}", who, usage(g)) for g in ("user", "account", "cluster") for who in WHO],
]


@pytest.mark.parametrize(
    ("description", "who", "call"),
    CASES,
    ids=[f"{who}: {description}" for description, who, _ in CASES],
)
def test_no_collection_scan(
    plans_db: Any, config: Config, description: str, who: str, call: Call
) -> None:
    db, recorder, dataset, embedded = plans_db
    all_clusters = dataset.get("clusters") or sorted(db.cluster_status.distinct("cluster_name"))
    partial = who == "partial"
    user = _partial_user(db, all_clusters) if partial else _user(db, f"{who}@example.org")
    mine = db.jobs.find_one({"cw.user": _user(db, "student@example.org").email})
    cfg = config.model_copy(
        update={"clusters": {name: config.clusters["testcluster"] for name in all_clusters}}
    )
    ctx = {
        "who": user,
        "clusters": all_clusters,
        "config": cfg,
        "now": datetime.now(UTC),
        "mine": mine["slurm"],
    }
    recorder.commands.clear()
    call(db, ctx)
    issued = list(recorder.commands)
    assert issued, "the call issued no command"
    scans = []
    for command in issued:
        collection, name, filter_, sort = queries_of(command)[0]
        if (collection, name, repr(filter_)) in ALLOWED_SCANS:
            continue
        if name in ("aggregate", "count") and filter_ and set(filter_) <= UNINDEXABLE_ALONE:
            continue
        if name in ("update", "delete") and set(filter_) <= {"_id", "version"}:
            continue  # _id point lookups
        if name == "find" and not filter_ and not sort and command.get("limit") == 1:
            continue  # find_one({}) of the test itself
        stages = effective_plan(db, collection, filter_, sort, clause_fallback=embedded)
        if "COLLSCAN" in stages:
            scans.append(f"{collection}.{name} {filter_!r} sort={sort!r}")
    assert not scans, "collection scans:\n" + "\n".join(scans)
