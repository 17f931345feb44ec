"""Checking that what the app sends to the database is served by an index.

The suites that guard query plans (REST API, pages, auth) share this harness:
a client whose command listener records every query it sends, a function that
turns a recorded command into its ``(collection, command, filter, sort)``
queries, and one that explains a query and returns the stages of the plan the
server runs.

On the embedded server (SecantusDB), ``explain()`` reports the plans of its
index pickers (one field; equalities over a compound prefix; equalities then
one range). For a flat filter none of them covers, the server plans the FIRST
clause an index serves and filters the rest; ``effective_plan(...,
clause_fallback=True)`` mirrors that by explaining clause by clause. On a real
MongoDB (``CLOCKWORK_TEST_MONGODB_URI``) the explain of the whole filter is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo import MongoClient, monitoring
from pymongo.database import Database

#: The commands that carry a query filter.
QUERY_COMMANDS = frozenset({"find", "aggregate", "count", "update", "delete", "findAndModify"})

Query = tuple[str, str, dict[str, Any], Any]  # (collection, command, filter, sort)


class CommandRecorder(monitoring.CommandListener):
    """Keeps the query commands a client sends, in order."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in QUERY_COMMANDS:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def queries(self) -> list[Query]:
        """Every query of the recorded commands, without repeats, in order."""
        out: list[Query] = []
        seen: set[str] = set()
        for command in self.commands:
            for query in queries_of(command):
                key = repr(query)
                if key not in seen:
                    seen.add(key)
                    out.append(query)
        return out


@contextmanager
def recording_client(uri: str) -> Iterator[tuple[MongoClient, CommandRecorder]]:
    """A client of its own whose commands are recorded."""
    recorder = CommandRecorder()
    client: MongoClient = MongoClient(uri, event_listeners=[recorder], tz_aware=True)
    try:
        yield client, recorder
    finally:
        client.close()


def queries_of(command: dict[str, Any]) -> list[Query]:
    """``(collection, command name, filter, sort)`` of each query inside a command."""
    name = next(iter(command))
    collection = command[name]
    if name == "find":
        return [(collection, name, command.get("filter") or {}, command.get("sort"))]
    if name == "aggregate":
        match = next((s["$match"] for s in command.get("pipeline", []) if "$match" in s), {})
        return [(collection, name, match, None)]
    if name == "count":
        return [(collection, name, command.get("query") or {}, None)]
    if name == "findAndModify":
        return [(collection, name, command.get("query") or {}, command.get("sort"))]
    statements = command.get("updates") or command.get("deletes") or []
    return [(collection, name, s.get("q") or {}, None) for s in statements]


def is_embedded(db: Database[Any]) -> bool:
    """True on the embedded SecantusDB server (its explain names itself)."""
    return "secantus" in str(db.command("explain", {"find": "jobs", "filter": {}}))


def plan_stages(plan: Any) -> list[str]:
    """Every ``stage`` name in an explain plan tree."""
    out: list[str] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            out.append(plan["stage"])
        for value in plan.values():
            out.extend(plan_stages(value))
    elif isinstance(plan, list):
        for value in plan:
            out.extend(plan_stages(value))
    return out


def winning_stages(
    db: Database[Any], collection: str, filter_: dict[str, Any], sort: Any = None
) -> list[str]:
    """The stages of the winning plan of a find with this filter and sort."""
    command: dict[str, Any] = {"find": collection, "filter": filter_}
    if sort:
        command["sort"] = dict(sort)
    answer = db.command("explain", command, verbosity="queryPlanner")
    return plan_stages(answer["queryPlanner"]["winningPlan"])


def effective_plan(
    db: Database[Any],
    collection: str,
    filter_: dict[str, Any],
    sort: Any = None,
    *,
    clause_fallback: bool = False,
) -> list[str]:
    """The stages of the plan the server runs for this query (see the module doc)."""
    stages = winning_stages(db, collection, filter_, sort)
    if "COLLSCAN" not in stages or not clause_fallback or len(filter_) < 2:
        return stages
    for field, clause in filter_.items():
        if field.startswith("$"):
            break
        clause_stages = winning_stages(db, collection, {field: clause}, sort)
        if "COLLSCAN" not in clause_stages:
            return clause_stages
    return stages
