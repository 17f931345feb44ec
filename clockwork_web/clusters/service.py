"""Clusters: the configured ones, with the freshness of their scraped data.

Users see the clusters they have an account on; staff and admins see all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.errors import NotFound
from clockwork_web.jobs.query import UserLike

STATUS_FIELDS = (
    "last_success",
    "last_attempt",
    "last_error",
    "last_error_message",
    "duration_s",
    "counts",
)


def visible_clusters(config: Config, user: UserLike) -> list[str]:
    """The configured cluster names ``user`` may see, sorted."""
    names = sorted(config.clusters)
    if user.sees_all_jobs:
        return names
    return [n for n in names if n in user.clusters]


def list_clusters(
    db: Database[Any], config: Config, user: UserLike, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each visible cluster: name, display name, timezone, docs, and freshness."""
    names = visible_clusters(config, user)
    now = now or datetime.now(UTC)
    statuses = {
        doc["cluster_name"]: doc
        for doc in db.cluster_status.find({"cluster_name": {"$in": names}}, {"_id": 0})
    }
    out = []
    for name in names:
        cfg = config.clusters[name]
        status = statuses.get(name, {})
        last_success = status.get("last_success")
        if isinstance(last_success, datetime) and last_success.tzinfo is None:
            last_success = last_success.replace(tzinfo=UTC)
        out.append(
            {
                "name": name,
                "display_name": cfg.display_name or name,
                "timezone": cfg.timezone,
                "docs_url": cfg.docs_url or None,
                "submit_enabled": cfg.submit.backend != "none",
                "account": (
                    user.cluster_accounts.get(name) if hasattr(user, "cluster_accounts") else None
                ),
                **{key: status.get(key) for key in STATUS_FIELDS},
                "age_s": (
                    round((now - last_success).total_seconds(), 1)
                    if isinstance(last_success, datetime)
                    else None
                ),
            }
        )
    return out


def get_cluster(db: Database[Any], config: Config, user: UserLike, name: str) -> dict[str, Any]:
    """One visible cluster; NotFound otherwise."""
    for cluster in list_clusters(db, config, user):
        if cluster["name"] == name:
            return cluster
    raise NotFound(f"no cluster {name!r}")
