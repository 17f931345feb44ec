"""The app's one JSON provider: datetimes as ISO 8601 UTC, ObjectIds as strings.

Every response (REST, pages' JSON) goes through it, so a date looks the same
everywhere: ``2024-05-01T12:00:00Z``. Naive datetimes are taken as UTC, which
is how the database stores them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from bson import ObjectId
from flask.json.provider import DefaultJSONProvider


def iso_utc(value: datetime) -> str:
    """``value`` as an ISO 8601 string in UTC with a ``Z`` suffix."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ClockworkJSONProvider(DefaultJSONProvider):
    """Flask's provider with Clockwork's date and id conventions."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return iso_utc(o)
        if isinstance(o, date):
            return o.isoformat()
        if isinstance(o, ObjectId):
            return str(o)
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        return DefaultJSONProvider.default(o)
