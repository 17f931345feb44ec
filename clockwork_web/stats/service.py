"""Usage over a period: CPU-hours and GPU-hours per user, account or cluster.

A job counts for the part of its run that lies inside the period:
``num_cpus * (min(end, period end) - max(start, period start))``; a job still
running counts up to now. Users see their own usage; staff and admins all.

The database reads two index-served ``$match`` stages (finished jobs by end
time, running jobs by state) and :func:`accumulate_usage`, a plain function,
does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database

from clockwork_web.errors import BadRequest
from clockwork_web.jobs.query import UserLike

GROUP_BY = {"user": "cw.user", "account": "slurm.account", "cluster": "slurm.cluster_name"}
MAX_PERIOD = timedelta(days=366)
#: At most this many jobs are read for one report.
MAX_JOBS = 500_000
FIELDS = {
    "_id": 0,
    "cw.user": 1,
    "slurm.username": 1,
    "slurm.account": 1,
    "slurm.cluster_name": 1,
    "slurm.num_cpus": 1,
    "slurm.num_gpus": 1,
    "slurm.start_time": 1,
    "slurm.end_time": 1,
}


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _group_key(doc: Mapping[str, Any], group_by: str) -> str:
    slurm = doc.get("slurm") or {}
    if group_by == "user":
        return (doc.get("cw") or {}).get("user") or f"{slurm.get('username') or '?'} (unmapped)"
    if group_by == "account":
        return slurm.get("account") or "(none)"
    return slurm.get("cluster_name") or "?"


def accumulate_usage(
    docs: Iterable[Mapping[str, Any]],
    *,
    group_by: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """Sum CPU-hours and GPU-hours per group, clipped to ``[start, end)``; biggest first."""
    totals: dict[str, dict[str, Any]] = {}
    for doc in docs:
        slurm = doc.get("slurm") or {}
        began = _aware(slurm.get("start_time"))
        if began is None:
            continue
        finished = _aware(slurm.get("end_time")) or now
        low, high = max(began, start), min(finished, end)
        if high <= low:
            continue
        hours = (high - low).total_seconds() / 3600.0
        row = totals.setdefault(
            _group_key(doc, group_by),
            {"key": _group_key(doc, group_by), "cpu_hours": 0.0, "gpu_hours": 0.0, "jobs": 0},
        )
        row["cpu_hours"] += hours * int(slurm.get("num_cpus") or 0)
        row["gpu_hours"] += hours * int(slurm.get("num_gpus") or 0)
        row["jobs"] += 1
    rows = sorted(totals.values(), key=lambda r: (-r["cpu_hours"], r["key"]))
    for row in rows:
        row["cpu_hours"] = round(row["cpu_hours"], 3)
        row["gpu_hours"] = round(row["gpu_hours"], 3)
    return rows


def usage(
    db: Database[Any],
    user: UserLike,
    *,
    group_by: str,
    start: datetime,
    end: datetime,
    cluster: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The usage report of the jobs ``user`` may see, over ``[start, end)``."""
    if group_by not in GROUP_BY:
        raise BadRequest(f"must be one of {', '.join(GROUP_BY)}", param="group_by")
    if end <= start:
        raise BadRequest("must be later than start", param="end")
    if end - start > MAX_PERIOD:
        raise BadRequest(f"the period may be at most {MAX_PERIOD.days} days", param="end")
    now = now or datetime.now(UTC)
    scope: dict[str, Any] = {}
    if not user.sees_all_jobs:
        scope["cw.user"] = user.email
        if cluster is not None and cluster not in user.clusters:
            return {"group_by": group_by, "start": start, "end": end, "rows": []}
    if cluster is not None:
        scope["slurm.cluster_name"] = cluster
    finished = {"slurm.end_time": {"$gte": start}, "slurm.start_time": {"$lt": end}}
    running = {"cw.bucket": "RUNNING", "slurm.end_time": None}
    if scope:
        # the user clause first: it is the index the database plans on
        finished = {**scope, **finished}
        running = {**scope, **running}
    docs: list[dict[str, Any]] = []
    for match in (finished, running):
        pipeline = [{"$match": match}, {"$project": FIELDS}, {"$limit": MAX_JOBS}]
        docs.extend(db.jobs.aggregate(pipeline))
    rows = accumulate_usage(docs, group_by=group_by, start=start, end=end, now=now)
    return {"group_by": group_by, "start": start, "end": end, "rows": rows}
