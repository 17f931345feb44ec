"""The app's database handle: one MongoClient per process, shared by requests."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_core.db import ensure_indexes, get_database


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
    app.cli.add_command(init_db_command)
