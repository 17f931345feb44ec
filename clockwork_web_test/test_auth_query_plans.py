"""Every query the auth package issues is planned on an index (no COLLSCAN).

The queries are not listed by hand: a command listener records what the
package's functions really send during a realistic scenario, and each one is
explained on the embedded server.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo import monitoring
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import oidc, tokens, users


class _Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "update", "delete", "aggregate", "findAndModify"):
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _filters(command: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """``(collection, filter, sort)`` of each query inside a recorded command."""
    if "find" in command:
        return [(command["find"], command.get("filter", {}), command.get("sort"))]
    if "update" in command:
        return [(command["update"], u["q"], None) for u in command["updates"]]
    if "delete" in command:
        return [(command["delete"], d["q"], None) for d in command["deletes"]]
    if "aggregate" in command:
        match = next((s["$match"] for s in command["pipeline"] if "$match" in s), {})
        return [(command["aggregate"], match, None)]
    return [(command["findAndModify"], command.get("query", {}), command.get("sort"))]


def test_auth_queries_use_indexes(config: Config, db: Database[Any], mongo_uri: str) -> None:
    recorder = _Recorder()
    client: pymongo.MongoClient = pymongo.MongoClient(
        mongo_uri, event_listeners=[recorder], tz_aware=True
    )
    try:
        mdb = client[db.name]
        for i in range(300):  # enough documents for a scan to be worth avoiding
            mdb.jobs.insert_one(
                {
                    "slurm": {"cluster_name": "mila", "job_id": i, "username": f"u{i % 30}"},
                    "cw": {"user": None},
                }
            )
        recorder.commands.clear()
        rows = users.parse_csv(
            "email,roles,accounts\na@example.org,staff,mila:u1\nb@example.org,,mila:u2\n"
        )
        users.import_users(mdb, rows)
        users.import_users(mdb, users.parse_csv("email,accounts\na@example.org,mila:u3\n"))
        users.set_cluster_accounts(mdb, "b@example.org", {"mila": "u4"})
        users.set_roles(mdb, "a@example.org", ["admin"])
        users.set_status(mdb, "a@example.org", "disabled")
        users.get_user(mdb, "a@example.org")
        users.list_users(mdb)
        users.record_login(mdb, "a@example.org")
        token, doc = tokens.create_token(mdb, "a@example.org", "t")
        tokens.resolve_token(mdb, token)
        mdb.api_tokens.update_one(
            {"_id": doc["_id"]}, {"$set": {"last_used": datetime(2000, 1, 1, tzinfo=UTC)}}
        )
        tokens.resolve_token(mdb, token)
        tokens.list_tokens(mdb, "a@example.org")
        tokens.revoke_token(mdb, "b@example.org", str(doc["_id"]))
        tokens.revoke_token(mdb, "a@example.org", str(doc["_id"]))
        app = create_app(config, {"TESTING": True})
        with app.test_request_context():
            from flask import session

            session[f"_state_{oidc.CLIENT_NAME}_s1"] = {"exp": time.time() + 60}
            oidc._consume_state(mdb, "s1")
            oidc.provision(mdb, "b@example.org", "B", "preprovisioned")
        queries = [q for c in recorder.commands for q in _filters(c)]
        assert len(queries) > 20
        scans = []
        for collection, flt, sort in queries:
            if not flt and collection == "users" and sort:
                continue  # the full listing, walked in email order on its index
            explain_cmd: dict[str, Any] = {"find": collection, "filter": flt}
            if sort:
                explain_cmd["sort"] = sort
            plan = json.dumps(mdb.command({"explain": explain_cmd}), default=str)
            if "COLLSCAN" in plan:
                scans.append(f"{collection} {flt} sort={sort}")
        assert not scans, "collection scans:\n" + "\n".join(scans)
    finally:
        client.close()
