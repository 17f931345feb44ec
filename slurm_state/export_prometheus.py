"""Prometheus metrics computed from the database, for ``/metrics`` and a textfile.

Every gauge is computed at collection time with bounded queries that use an
index: live (non-final) jobs through ``cw.bucket $in`` (index
``bucket_submit``), jobs that ended in the last 24 hours through
``slurm.end_time`` (index ``end_time``); nodes and cluster_status hold one
document per node/cluster.

The per-user gauge (``clockwork_user_jobs``, labelled with Slurm usernames) is
left out unless asked for (``per_user=True``; the web app's
``web.metrics_per_user_labels``): who is running what is personal data, and a
metrics endpoint is read by more people and tools than the dashboard. When on,
it counts live jobs only, to keep the number of series sane.

    collect_metrics(db, per_user=False) -> bytes   # what the web app's /metrics returns
    write_textfile(db, path, per_user=False)       # node_exporter's textfile collector
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pymongo.database import Database

from clockwork_core.schema import FINAL_STATES, JOB_STATES, state_bucket

#: Base states of jobs that are still alive (the live gauges count these).
LIVE_STATES: list[str] = sorted(JOB_STATES - FINAL_STATES)
#: The buckets of the live states.
LIVE_BUCKETS: list[str] = sorted({state_bucket(s) for s in LIVE_STATES})
#: The filter of live jobs (index ``bucket_submit``).
LIVE_MATCH: dict[str, Any] = {"cw.bucket": {"$in": LIVE_BUCKETS}}
ENDED_WINDOW = timedelta(hours=24)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _group(
    db: Database[Any],
    collection: str,
    match: dict[str, Any],
    keys: dict[str, str],
    sums: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    group: dict[str, Any] = {"_id": {k: f"${v}" for k, v in keys.items()}, "n": {"$sum": 1}}
    for name, path in (sums or {}).items():
        group[name] = {"$sum": {"$ifNull": [f"${path}", 0]}}
    return list(db[collection].aggregate([{"$match": match}, {"$group": group}]))


def _label(value: Any) -> str:
    return "" if value is None else str(value)


class ClockworkCollector(Collector):
    """Reads the database on every collection (no state between scrapes)."""

    def __init__(
        self, db: Database[Any], now: datetime | None = None, *, per_user: bool = False
    ) -> None:
        self.db = db
        self.now = now
        self.per_user = per_user

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = self.db
        now = self.now or datetime.now(UTC)
        live_match = LIVE_MATCH

        jobs = GaugeMetricFamily(
            "clockwork_jobs",
            "Live (not final) jobs by cluster, partition and state",
            labels=["cluster", "partition", "state"],
        )
        gpus_req = GaugeMetricFamily(
            "clockwork_jobs_gpus",
            "GPUs of live jobs by cluster and state",
            labels=["cluster", "state"],
        )
        per_gpu: dict[tuple[str, str], float] = {}
        for row in _group(
            db,
            "jobs",
            live_match,
            {
                "cluster": "slurm.cluster_name",
                "partition": "slurm.partition",
                "state": "slurm.job_state",
            },
            {"gpus": "slurm.num_gpus"},
        ):
            key = row["_id"]
            jobs.add_metric(
                [
                    _label(key.get("cluster")),
                    _label(key.get("partition")),
                    _label(key.get("state")),
                ],
                row["n"],
            )
            gk = (_label(key.get("cluster")), _label(key.get("state")))
            per_gpu[gk] = per_gpu.get(gk, 0) + float(row.get("gpus") or 0)
        for (cluster, state), value in sorted(per_gpu.items()):
            gpus_req.add_metric([cluster, state], value)
        yield jobs
        yield gpus_req

        ended = GaugeMetricFamily(
            "clockwork_jobs_ended_24h",
            "Jobs that ended in the last 24 hours by cluster, partition and final state",
            labels=["cluster", "partition", "state"],
        )
        for row in _group(
            db,
            "jobs",
            {"slurm.end_time": {"$gte": now - ENDED_WINDOW}},
            {
                "cluster": "slurm.cluster_name",
                "partition": "slurm.partition",
                "state": "slurm.job_state",
            },
        ):
            key = row["_id"]
            ended.add_metric(
                [
                    _label(key.get("cluster")),
                    _label(key.get("partition")),
                    _label(key.get("state")),
                ],
                row["n"],
            )
        yield ended
        if self.per_user:
            yield self._user_jobs(db, live_match)
        yield from self._nodes_and_scrapes(db)

    def _user_jobs(self, db: Database[Any], live_match: dict[str, Any]) -> GaugeMetricFamily:
        """Live jobs per Slurm user: only when per-user series are enabled."""
        users = GaugeMetricFamily(
            "clockwork_user_jobs",
            "Live jobs by cluster, Slurm user and state",
            labels=["cluster", "user", "state"],
        )
        for row in _group(
            db,
            "jobs",
            live_match,
            {"cluster": "slurm.cluster_name", "user": "slurm.username", "state": "slurm.job_state"},
        ):
            key = row["_id"]
            users.add_metric(
                [_label(key.get("cluster")), _label(key.get("user")), _label(key.get("state"))],
                row["n"],
            )
        return users

    def _nodes_and_scrapes(self, db: Database[Any]) -> Iterator[GaugeMetricFamily]:
        nodes = GaugeMetricFamily(
            "clockwork_nodes", "Nodes by cluster and base state", labels=["cluster", "state"]
        )
        gpus_total = GaugeMetricFamily(
            "clockwork_gpus_total", "GPUs on the nodes of a cluster", labels=["cluster"]
        )
        gpus_alloc = GaugeMetricFamily(
            "clockwork_gpus_allocated", "GPUs allocated to jobs", labels=["cluster"]
        )
        totals: dict[str, list[float]] = {}
        for row in _group(
            db,
            "nodes",
            {"slurm.cluster_name": {"$exists": True}},
            {"cluster": "slurm.cluster_name", "state": "slurm.state"},
            {"gpus": "slurm.num_gpus", "alloc": "slurm.alloc_gpus"},
        ):
            key = row["_id"]
            cluster = _label(key.get("cluster"))
            nodes.add_metric([cluster, _label(key.get("state"))], row["n"])
            total = totals.setdefault(cluster, [0.0, 0.0])
            total[0] += float(row.get("gpus") or 0)
            total[1] += float(row.get("alloc") or 0)
        for cluster, (total, alloc) in sorted(totals.items()):
            gpus_total.add_metric([cluster], total)
            gpus_alloc.add_metric([cluster], alloc)
        yield nodes
        yield gpus_total
        yield gpus_alloc

        duration = GaugeMetricFamily(
            "clockwork_scrape_duration_seconds", "Duration of the last scrape", labels=["cluster"]
        )
        success = GaugeMetricFamily(
            "clockwork_scrape_success", "1 if the last scrape succeeded", labels=["cluster"]
        )
        last = GaugeMetricFamily(
            "clockwork_scrape_last_success_timestamp_seconds",
            "When the last successful scrape started (Unix time)",
            labels=["cluster"],
        )
        counts = GaugeMetricFamily(
            "clockwork_scrape_records",
            "What the last scrape did (jobs_new, jobs_updated, ..., skipped)",
            labels=["cluster", "kind"],
        )
        for status in db.cluster_status.find({"cluster_name": {"$exists": True}}):
            cluster = _label(status.get("cluster_name"))
            if status.get("duration_s") is not None:
                duration.add_metric([cluster], float(status["duration_s"]))
            ok_at, err_at = status.get("last_success"), status.get("last_error")
            success.add_metric([cluster], 1.0 if ok_at and (not err_at or ok_at >= err_at) else 0.0)
            if ok_at:
                last.add_metric([cluster], ok_at.timestamp())
            for kind, value in sorted((status.get("counts") or {}).items()):
                counts.add_metric([cluster, kind], float(value))
        yield duration
        yield success
        yield last
        yield counts


def registry_for(
    db: Database[Any], now: datetime | None = None, *, per_user: bool = False
) -> CollectorRegistry:
    """A fresh registry holding only Clockwork's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClockworkCollector(db, now, per_user=per_user))
    return registry


def collect_metrics(
    db: Database[Any], now: datetime | None = None, *, per_user: bool = False
) -> bytes:
    """The exposition text of every Clockwork gauge (``CONTENT_TYPE``).

    ``per_user`` adds the per-Slurm-user series; off unless configured.
    """
    return generate_latest(registry_for(db, now, per_user=per_user))


def write_textfile(db: Database[Any], path: Path, *, per_user: bool = False) -> None:
    """Write the metrics for node_exporter's textfile collector (atomic rename).

    Without per-user series by default, like ``/metrics``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(db, per_user=per_user))
