"""GPUs: the models and their specs; per cluster, how many are allocated now and lately.

"Now" sums the nodes' allocation; "over time" is the average number of GPUs
allocated per hour over the last days, computed from the jobs that ran then
(ended in the window, or still running) and kept for a few minutes: it reads
thousands of jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import render_template

from clockwork_web.auth.access import current_user, login_required
from clockwork_web.db import get_config, get_db
from clockwork_web.gpus import service as gpus_service
from clockwork_web.nodes import service as nodes_service
from clockwork_web.pages import bp

HISTORY_DAYS = 7
STEP = timedelta(hours=1)
HISTORY_JOBS_CAP = 100_000
CACHE_TTL_S = 300.0

_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, Any]] = {}

_GPU_JOB_FIELDS = {
    "_id": 0,
    "slurm.cluster_name": 1,
    "slurm.start_time": 1,
    "slurm.end_time": 1,
    "slurm.num_gpus": 1,
}


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def allocation_series(
    jobs: Iterable[Mapping[str, Any]], since: datetime, now: datetime, step: timedelta = STEP
) -> dict[str, list[float]]:
    """Per cluster, the average number of GPUs allocated in each ``step`` from ``since``.

    ``jobs`` are ``slurm`` dicts (cluster, start, end, num_gpus); a job without
    an end runs until ``now``.
    """
    n = max(1, int((now - since) / step) + 1)
    width = step.total_seconds()
    series: dict[str, list[float]] = {}
    for job in jobs:
        gpus = job.get("num_gpus") or 0
        start = job.get("start_time")
        if not gpus or start is None:
            continue
        start = max(_aware(start), since)
        end = min(_aware(job["end_time"]) if job.get("end_time") else now, now)
        if end <= start:
            continue
        values = series.setdefault(job["cluster_name"], [0.0] * n)
        first = int((start - since) / step)
        last = min(n - 1, int((end - since) / step))
        for i in range(first, last + 1):
            low = max(start, since + i * step)
            high = min(end, since + (i + 1) * step)
            if high > low:
                values[i] += gpus * (high - low).total_seconds() / width
    return {c: [round(v, 2) for v in values] for c, values in series.items()}


def _history(db: Any, since: datetime, now: datetime) -> dict[str, list[float]]:
    key = f"{db.name}:{since.date()}"
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
    ended = db.jobs.find(
        {"slurm.end_time": {"$gte": since}, "slurm.num_gpus": {"$gt": 0}}, _GPU_JOB_FIELDS
    ).limit(HISTORY_JOBS_CAP)
    running = db.jobs.find(
        {"cw.bucket": "RUNNING", "slurm.num_gpus": {"$gt": 0}},
        _GPU_JOB_FIELDS,
    ).limit(HISTORY_JOBS_CAP)
    jobs = [d["slurm"] for d in ended] + [d["slurm"] for d in running]
    value = allocation_series(jobs, since, now)
    with _cache_lock:
        if len(_cache) > 100:
            _cache.clear()
        _cache[key] = (time.monotonic() + CACHE_TTL_S, value)
    return value


def allocation_now(nodes: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (cluster, GPU model): GPUs in total and allocated, from node records."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for node in nodes:
        if not node.get("num_gpus"):
            continue
        key = (node["cluster_name"], node.get("gpu_type") or "?")
        row = out.setdefault(key, {"total": 0, "allocated": 0, "nodes": 0})
        row["total"] += node["num_gpus"]
        row["allocated"] += node.get("alloc_gpus") or 0
        row["nodes"] += 1
    return dict(sorted(out.items()))


@bp.get("/gpus")
@login_required
def gpus() -> str:
    user = current_user()
    db = get_db()
    models = gpus_service.list_gpus(db)
    nodes = [d["slurm"] for d in nodes_service.all_nodes(db, user)]
    now_alloc = allocation_now(nodes)
    visible = {c for c, _ in now_alloc} | (
        set(get_config().clusters) if user.sees_all_jobs else set(user.clusters)
    )
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + STEP
    since = now - timedelta(days=HISTORY_DAYS)
    history = {c: v for c, v in _history(db, since, now).items() if c in visible}
    labels = [
        (since + i * STEP).strftime("%m-%d %H:00")
        for i in range(len(next(iter(history.values()), [])))
    ]
    chart = {
        "labels": labels,
        "series": [{"label": c, "data": v} for c, v in sorted(history.items())],
    }
    return render_template(
        "pages/gpus.html",
        models=models,
        allocation=now_alloc,
        chart=chart,
        history_days=HISTORY_DAYS,
    )
