"""The dashboard: my jobs across clusters, live ones first, recent failures, usage.

Every query is on the user's own jobs (``cw.user``) through the ``user_*``
indexes, bounded; counts stop at :data:`COUNT_CAP`. A small script refreshes
the live part every minute from ``/dashboard/live`` without reloading the page.
"""

from __future__ import annotations

import threading
import time
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app, render_template

from clockwork_core.schema import STATE_BUCKETS
from clockwork_web.auth.access import current_user, login_required
from clockwork_web.db import get_db
from clockwork_web.i18n import select_timezone
from clockwork_web.jobs.service import find_jobs
from clockwork_web.pages import bp

#: Counts above this show as "10,000+" (a count reads its whole index range).
COUNT_CAP = 10_000
LIVE_LIMIT = 25
FAILURES_LIMIT = 10
USAGE_DAYS = 30
#: Ended jobs read for the usage plot, at most.
USAGE_JOBS_CAP = 20_000
#: How long a user's state counts and usage plot are reused (the page refreshes each minute).
COUNTS_TTL_S = 60.0
USAGE_TTL_S = 300.0

#: Newest first; the job id orders jobs submitted in the same second.
NEWEST_FIRST = [("slurm.submit_time", -1), ("slurm.job_id", -1)]

USAGE_PROJECTION = {
    "_id": 0,
    "slurm.start_time": 1,
    "slurm.end_time": 1,
    "slurm.num_cpus": 1,
    "slurm.num_gpus": 1,
}


@dataclass(frozen=True)
class DayUsage:
    day: date
    cpu_hours: float
    gpu_hours: float


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def usage_per_day(
    jobs: Iterable[Mapping[str, Any]], since: datetime, now: datetime, tz: str = "UTC"
) -> list[DayUsage]:
    """CPU-hours and GPU-hours per calendar day (in ``tz``) from ``since`` to ``now``.

    Each job (a ``slurm`` dict with start/end times and CPU/GPU counts) is
    split across the days it ran; a job still running counts until ``now``.
    """
    zone = zoneinfo.ZoneInfo(tz)
    first = since.astimezone(zone).date()
    last = now.astimezone(zone).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    cpu = dict.fromkeys(days, 0.0)
    gpu = dict.fromkeys(days, 0.0)
    for job in jobs:
        start, end = job.get("start_time"), job.get("end_time")
        if start is None:
            continue
        start = max(_aware(start), since)
        end = min(_aware(end) if end is not None else now, now)
        if end <= start:
            continue
        cpus = job.get("num_cpus") or 0
        gpus = job.get("num_gpus") or 0
        cursor = start
        while cursor < end:
            local = cursor.astimezone(zone)
            next_midnight = datetime.combine(
                local.date() + timedelta(days=1), datetime.min.time(), zone
            )
            piece_end = min(end, next_midnight.astimezone(UTC))
            hours = (piece_end - cursor).total_seconds() / 3600
            day = local.date()
            if day in cpu:
                cpu[day] += hours * cpus
                gpu[day] += hours * gpus
            cursor = piece_end
    return [DayUsage(d, round(cpu[d], 2), round(gpu[d], 2)) for d in days]


class _TTLCache:
    """Per-user results kept briefly: counting and summing a user's jobs is the
    slow part of the dashboard, and a minute-old count is what it shows anyway."""

    def __init__(self, max_entries: int = 5000) -> None:
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}
        self._max = max_entries

    def get_or_compute(self, key: Any, ttl: float, compute: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._values) >= self._max:
                self._values.clear()
            self._values[key] = (now + ttl, value)
        return value


_cache = _TTLCache()


def _bucket_counts(db: Any, email: str) -> dict[str, int]:
    return _cache.get_or_compute(
        ("counts", db.name, email), COUNTS_TTL_S, lambda: _count_buckets(db, email)
    )


def _count_buckets(db: Any, email: str) -> dict[str, int]:
    return {
        bucket: db.jobs.count_documents({"cw.user": email, "cw.bucket": bucket}, limit=COUNT_CAP)
        for bucket in STATE_BUCKETS
    }


def live_context(db: Any, email: str) -> dict[str, Any]:
    """What the refreshing part of the dashboard shows.

    Read through :func:`clockwork_web.jobs.service.find_jobs`: one query per
    bucket (``cw.bucket``) over the newest submit-time slice, so that the
    database reads the few dozen jobs shown rather than every live or failed
    job of the user.
    """
    live = find_jobs(
        db,
        {"cw.user": email, "cw.bucket": {"$in": ["PENDING", "RUNNING"]}},
        NEWEST_FIRST,
        limit=LIVE_LIMIT + 1,
    )
    # running first, then pending; each newest first
    live.sort(key=lambda d: d["slurm"]["job_state"] not in STATE_BUCKETS["RUNNING"])
    failures = find_jobs(
        db, {"cw.user": email, "cw.bucket": "FAILED"}, NEWEST_FIRST, limit=FAILURES_LIMIT
    )
    return {
        "counts": _bucket_counts(db, email),
        "count_cap": COUNT_CAP,
        "live": live[:LIVE_LIMIT],
        "live_more": len(live) > LIVE_LIMIT,
        "failures": failures,
        "updated": datetime.now(UTC),
    }


def usage_context(db: Any, email: str, live: list[dict[str, Any]]) -> dict[str, Any]:
    """The usage plot's data; kept for USAGE_TTL_S per user and time zone."""
    key = ("usage", db.name, email, select_timezone())
    return _cache.get_or_compute(key, USAGE_TTL_S, lambda: _usage(db, email, live))


def _usage(db: Any, email: str, live: list[dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(UTC)
    since = now - timedelta(days=USAGE_DAYS)
    ended = db.jobs.find(
        {"cw.user": email, "slurm.end_time": {"$gte": since}}, USAGE_PROJECTION
    ).limit(USAGE_JOBS_CAP)
    jobs = [d["slurm"] for d in ended] + [d["slurm"] for d in live if d["slurm"].get("start_time")]
    days = usage_per_day(jobs, since, now, select_timezone())
    return {
        "usage": days,
        "usage_chart": {
            "labels": [d.day.isoformat() for d in days],
            "cpu": [d.cpu_hours for d in days],
            "gpu": [d.gpu_hours for d in days],
        },
        "cpu_total": round(sum(d.cpu_hours for d in days), 1),
        "gpu_total": round(sum(d.gpu_hours for d in days), 1),
    }


@bp.get("/")
@login_required
def dashboard() -> str:
    user = current_user()
    db = get_db()
    context = live_context(db, user.email)
    context.update(usage_context(db, user.email, context["live"]))
    context["clusters"] = sorted(user.clusters)
    context["configured"] = sorted(current_app.config["CLOCKWORK"].clusters)
    return render_template("pages/dashboard.html", **context)


@bp.get("/dashboard/live")
@login_required
def dashboard_live() -> str:
    """The refreshing fragment of the dashboard (HTML, fetched by dashboard.js)."""
    user = current_user()
    return render_template("pages/_dashboard_live.html", **live_context(get_db(), user.email))
