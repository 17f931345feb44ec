"""The app's database handle: one MongoClient per process, shared by requests."""

from __future__ import annotations

import logging
import time
from typing import Any

import click
from flask import Flask, current_app
from pymongo.database import Database
from pymongo.errors import PyMongoError

from clockwork_core.config import Config
from clockwork_core.db import ensure_indexes, ensure_indexes_once, get_database

log = logging.getLogger(__name__)

#: After a failed index check (database down), requests skip it for this long.
INDEX_RETRY_S = 30.0


def get_config() -> Config:
    """The Clockwork configuration of the current app."""
    return current_app.config["CLOCKWORK"]


def get_db() -> Database[Any]:
    """The Clockwork database of the current app."""
    return get_database(get_config().database)


@click.command("init-db")
def init_db_command() -> None:
    """Create the collections' indexes (idempotent)."""
    ensure_indexes(get_db())
    click.echo("indexes ensured")


def init_app(app: Flask) -> None:
    """Register ``init-db`` and make the first request of each process ensure the indexes.

    Without ``init-db`` every page would scan the jobs collection. The check is
    one read of a marker the first time (then nothing), and it runs at the first
    request rather than in ``create_app``: building the app opens no connection
    (gunicorn forks it; tests build one app per test). A database that is down
    does not fail the request here; the check is tried again later.
    """
    app.cli.add_command(init_db_command)
    state = {"ready": False, "retry_at": 0.0}

    @app.before_request
    def _ensure_indexes() -> None:
        if state["ready"] or time.monotonic() < state["retry_at"]:
            return
        try:
            if ensure_indexes_once(get_db()):
                log.warning("created the database indexes (init-db had not been run)")
        except PyMongoError as exc:
            state["retry_at"] = time.monotonic() + INDEX_RETRY_S
            log.error("cannot ensure the database indexes: %s: %s", type(exc).__name__, exc)
            return
        state["ready"] = True
