"""Fixtures every suite shares: a real database server, a fresh database per test.

The session starts one throw-away embedded server (SecantusDB, its own process,
reached over a socket with pymongo) unless ``CLOCKWORK_TEST_MONGODB_URI`` names
a real MongoDB to use instead. Each test gets its own database, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config, load_config
from clockwork_core.db import close_clients, ensure_indexes, get_client
from test_common import embedded_db


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the database server the suites use."""
    external = os.environ.get("CLOCKWORK_TEST_MONGODB_URI")
    if external:
        yield external
        return
    directory: Path = tmp_path_factory.mktemp("embedded-db")
    server = embedded_db.up(directory)
    try:
        yield server.uri
    finally:
        close_clients()
        embedded_db.down(directory, purge=True)


@pytest.fixture
def db_name() -> str:
    return f"cw_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def config(mongo_uri: str, db_name: str, tmp_path: Path) -> Config:
    """A configuration pointing at this test's database, with one test cluster."""
    return load_config(
        path=None,
        env={},
        overrides={
            "database.uri": mongo_uri,
            "database.name": db_name,
            "web.secret_key": "test-secret-" + uuid.uuid4().hex,
            "clusters": {
                "testcluster": {"display_name": "Test cluster", "fetch": "local"},
            },
        },
    )


@pytest.fixture
def db(config: Config, mongo_uri: str) -> Iterator[Database[Any]]:
    """This test's own database, with every index in place; dropped afterwards."""
    client = get_client(mongo_uri)
    database = client[config.database.name]
    ensure_indexes(database)
    yield database
    client.drop_database(config.database.name)
