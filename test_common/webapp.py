"""The real web app served on a loopback port, for tests that speak HTTP to it.

The client's tests and the browser tests use it: :func:`serve` runs any Flask
app with werkzeug's threaded server in a background thread until the ``with``
block ends; the ``live_server`` fixture builds the app on the test's own
database (the ``config``/``db`` fixtures of the root conftest) with a small
generated data set and API tokens for the demo users. Import the fixture into
a test module (``from test_common.webapp import live_server``) to use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask import Flask
from pymongo.database import Database
from werkzeug.serving import make_server

from clockwork_core.config import Config

#: The demo logins of test_common.datagen, by role.
ADMIN = "admin@example.org"
STAFF = "staff@example.org"
STUDENT = "student@example.org"

SMALL_DATASET: dict[str, Any] = {"n_jobs": 500, "n_users": 20, "seed": 7}
START_TIMEOUT_S = 10.0


@contextmanager
def serve(app: Flask, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free port of ``host``; yields its base URL (no trailing /)."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://{host}:{server.server_port}"
    try:
        _wait_until_up(url)
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=START_TIMEOUT_S)


def _wait_until_up(url: str) -> None:
    """Poll the server until it answers at all (any status), with a deadline."""
    import time

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            requests.get(url + "/", timeout=1.0, allow_redirects=False)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass
class LiveServer:
    """A running app: its URL, database, configuration and ready-made tokens."""

    url: str
    app: Flask
    db: Database[Any]
    config: Config
    dataset: dict[str, Any]
    #: email -> a valid API token of that user
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, email: str, name: str = "tests") -> str:
        """A (new, cached) API token for ``email``."""
        if email not in self.tokens:
            from clockwork_web.auth.tokens import create_token

            self.tokens[email], _ = create_token(self.db, email, name)
        return self.tokens[email]

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email)}"}


def load_small_dataset(db: Database[Any], config: Config, **overrides: Any) -> dict[str, Any]:
    """The small generated data set (500 jobs, 20 users), with the config's clusters."""
    from test_common.datagen import load_dataset

    params = {**SMALL_DATASET, **overrides}
    return load_dataset(db, clusters=list(config.clusters), **params)


@pytest.fixture
def live_server(config: Config, db: Database[Any]) -> Iterator[LiveServer]:
    """The real app on a loopback port, over this test's database with a small data set."""
    from clockwork_web import create_app

    dataset = load_small_dataset(db, config)
    config = with_dataset_clusters(config, dataset["clusters"])
    app = create_app(config)
    with serve(app) as url:
        yield LiveServer(url=url, app=app, db=db, config=config, dataset=dataset)


def with_dataset_clusters(config: Config, names: list[str]) -> Config:
    """``config`` with a (fetch-only) entry for each generated cluster it lacks.

    The app only shows the clusters of its configuration, as in production.
    """
    from clockwork_core.config import ClusterConfig
    from test_common.datagen import cluster_spec

    clusters = dict(config.clusters)
    for name in names:
        if name not in clusters:
            spec = cluster_spec(name)
            clusters[name] = ClusterConfig(
                display_name=spec["display_name"], timezone=spec["timezone"]
            )
    return config.model_copy(update={"clusters": clusters})


def with_unreachable_submissions(config: Config, cluster: str = "testcluster") -> Config:
    """``config`` where ``cluster`` submits through a slurmrestd nobody answers at.

    Submissions are then accepted and stay PENDING (Clockwork retries them
    later), which is enough to exercise the submission API without a Slurm.
    """
    from clockwork_core.config import ClusterConfig, SubmitConfig

    clusters = dict(config.clusters)
    clusters[cluster] = ClusterConfig(
        display_name=clusters[cluster].display_name if cluster in clusters else cluster,
        submit=SubmitConfig(
            backend="slurmrestd", rest_url="http://127.0.0.1:9", timeout_s=2.0, retry_every_s=3600
        ),
    )
    return config.model_copy(update={"clusters": clusters})


@pytest.fixture
def live_server_submit(config: Config, db: Database[Any]) -> Iterator[LiveServer]:
    """``live_server`` whose ``testcluster`` accepts submissions (they stay PENDING)."""
    from clockwork_web import create_app

    dataset = load_small_dataset(db, config)
    config = with_unreachable_submissions(with_dataset_clusters(config, dataset["clusters"]))
    app = create_app(config)
    with serve(app) as url:
        yield LiveServer(url=url, app=app, db=db, config=config, dataset=dataset)
