"""Every query the auth package issues is planned on an index (no COLLSCAN).

The queries are not listed by hand: a command listener records what the
package's functions really send during a realistic scenario, and each one is
explained on the embedded server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import oidc, tokens, users
from clockwork_web.auth.ratelimit import FailureLimiter
from test_common.query_plans import effective_plan, recording_client


def test_auth_queries_use_indexes(config: Config, db: Database[Any], mongo_uri: str) -> None:
    with recording_client(mongo_uri) as (client, recorder):
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
        limiter = FailureLimiter(limit=2, window_s=60)
        for _ in range(3):
            limiter.record(mdb, "192.0.2.1", "email:a@example.org")
        limiter.record(mdb, "192.0.2.2", "token:cw_abcde")
        limiter.failures(mdb, "192.0.2.1", "email:a@example.org")
        users.end_sessions(mdb, "A@example.org")
        app = create_app(config, {"TESTING": True})
        with app.test_request_context():
            from flask import session

            session[f"_state_{oidc.CLIENT_NAME}_s1"] = {"exp": time.time() + 60}
            oidc._consume_state(mdb, "s1")
            oidc.provision(mdb, "b@example.org", "B", "preprovisioned")
        queries = recorder.queries()
        assert len(queries) > 10
        failure_queries = {(c, name) for c, name, _, _ in queries if c == "auth_failures"}
        assert failure_queries == {
            ("auth_failures", "findAndModify"),
            ("auth_failures", "update"),
            ("auth_failures", "delete"),
            ("auth_failures", "find"),
        }
        scans = []
        for collection, name, flt, sort in queries:
            if not flt and collection == "users" and sort:
                continue  # the full listing, walked in email order on its index
            # strict: the whole filter must plan on an index, no clause fallback
            if "COLLSCAN" in effective_plan(mdb, collection, flt, sort):
                scans.append(f"{collection}.{name} {flt} sort={sort}")
        assert not scans, "collection scans:\n" + "\n".join(scans)


def test_the_guard_sees_a_scan(db: Database[Any]) -> None:
    """The plan check itself can fail: a filter on an unindexed field is a scan."""
    db.users.insert_many(
        [{"email": f"u{i}@example.org", "display_name": f"U{i}"} for i in range(50)]
    )
    assert "COLLSCAN" in effective_plan(db, "users", {"display_name": "U1"})
    assert "COLLSCAN" not in effective_plan(db, "users", {"email": "u1@example.org"})
