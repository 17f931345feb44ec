"""What the REST API tests share: an app on two clusters, four people, known jobs.

Import the fixtures into a test module (``from api_fixtures import api, ...``).
The jobs are hand-made so that tests can assert exact answers:

- alice (user): 20 jobs on ``testcluster``, 10 on ``other``;
- bob (user, account on ``testcluster`` only): 20 jobs on ``testcluster``;
- 5 jobs whose Slurm user maps to nobody;
- staff and admin own no jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from clockwork_core.config import ClusterConfig, Config
from clockwork_core.schema import Job, Node, job_document, node_document

ALICE = "alice@example.org"
BOB = "bob@example.org"
STAFF = "staff@example.org"
ADMIN = "admin@example.org"
DISABLED = "carol@example.org"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
STATES = ["COMPLETED", "RUNNING", "PENDING", "FAILED", "CANCELLED", "TIMEOUT"]


def user_doc(email: str, roles: list[str], accounts: dict[str, str], status: str = "enabled"):
    return {
        "email": email,
        "display_name": email.split("@")[0].title(),
        "status": status,
        "roles": roles,
        "cluster_accounts": accounts,
        "account_keys": [f"{c}/{u}" for c, u in accounts.items()],
        "settings": {},
        "created_at": T0,
    }


def make_job(cluster: str, job_id: int, username: str, email: str | None, i: int) -> dict:
    submit = T0 + timedelta(hours=i)
    state = STATES[i % len(STATES)]
    job = Job(
        cluster_name=cluster,
        job_id=job_id,
        name=f"train-{username}-{i}" if i % 2 else f"eval.{username}[{i}]",
        username=username,
        account="def-lab" if i % 3 else "rrg-lab",
        partition="long" if i % 2 else "main",
        job_state=state,
        submit_time=submit,
        start_time=None if state == "PENDING" else submit + timedelta(minutes=10),
        end_time=(submit + timedelta(hours=2) if state not in ("PENDING", "RUNNING") else None),
        num_cpus=4,
        num_gpus=1 if i % 2 else 0,
        nodes="cn-a[001-002]",
        array_job_id=9000 if i < 3 else None,
    )
    return job_document(job, user=email, seen=submit, scrape_id="test")


def build_jobs() -> list[dict[str, Any]]:
    docs = []
    for i in range(20):
        docs.append(make_job("testcluster", 100 + i, "alice", ALICE, i))
    for i in range(10):
        docs.append(make_job("other", 100 + i, "alice2", ALICE, i))
    for i in range(20):
        docs.append(make_job("testcluster", 1000 + i, "bob", BOB, i))
    for i in range(5):
        docs.append(make_job("testcluster", 5000 + i, "ghost", None, i))
    return docs


def build_nodes() -> list[dict[str, Any]]:
    docs = []
    for cluster in ("testcluster", "other"):
        for i in range(1, 6):
            node = Node(
                cluster_name=cluster,
                name=f"cn-a{i:03d}",
                state="idle" if i % 2 else "allocated",
                cpus=32,
                num_gpus=4,
                gpu_type="a100",
            )
            docs.append(node_document(node, seen=T0, scrape_id="test"))
    return docs


@dataclass
class Api:
    """The app, its test client, the database and a token per person."""

    app: Flask
    client: FlaskClient
    db: Database[Any]
    config: Config
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[email]}"}

    def get(self, email: str, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers(email), **kw)


@pytest.fixture
def api_config(config: Config) -> Config:
    clusters = {
        "testcluster": ClusterConfig(display_name="Test cluster"),
        "other": ClusterConfig(display_name="Other cluster"),
    }
    return config.model_copy(update={"clusters": clusters})


@pytest.fixture
def api(api_config: Config, db: Database[Any]) -> Iterator[Api]:
    """The app over a database holding the people, jobs and nodes above."""
    from clockwork_web import create_app
    from clockwork_web.auth.tokens import create_token

    db.users.insert_many(
        [
            user_doc(ALICE, ["user"], {"testcluster": "alice", "other": "alice2"}),
            user_doc(BOB, ["user"], {"testcluster": "bob"}),
            user_doc(STAFF, ["staff"], {"testcluster": "staff"}),
            user_doc(ADMIN, ["admin"], {}),
            user_doc(DISABLED, ["user"], {"testcluster": "carol"}, status="disabled"),
        ]
    )
    db.jobs.insert_many(build_jobs())
    db.nodes.insert_many(build_nodes())
    db.gpus.insert_one({"name": "a100", "vendor": "nvidia", "ram": 80})
    db.cluster_status.insert_one(
        {"cluster_name": "testcluster", "last_success": T0, "last_error": None, "counts": {}}
    )
    app = create_app(api_config, {"TESTING": True})
    api = Api(app=app, client=app.test_client(), db=db, config=api_config)
    for email in (ALICE, BOB, STAFF, ADMIN, DISABLED):
        api.tokens[email], _ = create_token(db, email, "tests")
    yield api
