"""Every query the pages issue is served by an index.

The app renders every page, as a user, staff and an admin, through a client
that records the commands it sends (pymongo command monitoring); each
recorded filter is then explained the way ``test_query_plans`` does (its
helpers are reused) and the test fails on a collection scan.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import MongoClient
from test_pages import ADMIN, ADMIN_URLS, CLUSTERS, STAFF, STUDENT, client_as, page_urls
from test_query_plans import ALLOWED_SCANS

from clockwork_core.config import ClusterConfig, Config
from clockwork_core.db import ensure_indexes
from clockwork_web import create_app
from test_common.query_plans import CommandRecorder, effective_plan, is_embedded, queries_of

#: Page queries allowed to scan, with why.
PAGE_ALLOWED_SCANS = ALLOWED_SCANS | {
    # the GPU models: a handful of documents, listed whole by gpus.service
    ("gpus", "find", "{}"),
}


@pytest.fixture(scope="module")
def recorded(mongo_uri: str) -> Any:
    from test_common.datagen import load_dataset

    recorder = CommandRecorder()
    client: MongoClient = MongoClient(mongo_uri, event_listeners=[recorder], tz_aware=True)
    name = "cw_test_page_plans"
    client.drop_database(name)
    db = client[name]
    ensure_indexes(db)
    load_dataset(db, n_jobs=2000, n_users=20, seed=3, clusters=list(CLUSTERS))
    yield db, recorder, is_embedded(db)
    client.drop_database(name)
    client.close()


def test_no_page_runs_a_collection_scan(
    recorded: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, recorder, embedded = recorded
    cfg = config.model_copy(update={"clusters": {c: ClusterConfig() for c in CLUSTERS}})
    monkeypatch.setattr("clockwork_web.db.get_database", lambda _cfg: db)
    app = create_app(cfg, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    urls = [
        *page_urls(db),
        "/jobs?state=PENDING&cluster=narval",
        "/jobs?user=student&sort=start_time",
        "/jobs?array_job_id=1&fold=1",
        "/jobs?fold=1&state=RUNNING",
        "/jobs?prop_name=lr",
        "/jobs/export.csv?state=FAILED",
    ]
    recorder.commands.clear()
    for email in (STUDENT, STAFF, ADMIN):
        client = client_as(app, email)
        for url in urls + (ADMIN_URLS if email != STUDENT else []):
            assert client.get(url).status_code == 200, (email, url)
    assert client.post(
        f"/jobs/{page_urls(db)[6].split('/', 2)[2]}/props", data={"name": "a", "value": "b"}
    ).status_code in (302, 403)
    scans = []
    seen = set()
    for command in recorder.commands:
        collection, name, filter_, sort = queries_of(command)[0]
        key = (collection, name, repr(filter_), repr(sort))
        if key in seen or (collection, name, repr(filter_)) in PAGE_ALLOWED_SCANS:
            continue
        seen.add(key)
        stages = effective_plan(db, collection, filter_, sort, clause_fallback=embedded)
        if "COLLSCAN" in stages:
            scans.append(f"{collection}.{name} {filter_} sort={sort}")
    assert seen, "nothing was recorded"
    assert not scans, "collection scans:\n" + "\n".join(scans)
