"""Clusters and one cluster: data freshness, last scrape error, node states, utilization."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import render_template

from clockwork_web.auth.access import current_user, login_required
from clockwork_web.clusters import service as clusters_service
from clockwork_web.db import get_config, get_db
from clockwork_web.nodes import service as nodes_service
from clockwork_web.pages import bp

#: Data older than this is flagged as stale.
STALE_AFTER_S = 30 * 60


def node_summary(nodes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Node counts by state, and CPUs/memory/GPUs allocated of total."""
    states: dict[str, int] = {}
    totals = {"cpus": 0, "alloc_cpus": 0, "mem": 0, "alloc_mem": 0, "gpus": 0, "alloc_gpus": 0}
    partitions: set[str] = set()
    count = 0
    for node in nodes:
        count += 1
        states[node.get("state") or "unknown"] = states.get(node.get("state") or "unknown", 0) + 1
        totals["cpus"] += node.get("cpus") or 0
        totals["alloc_cpus"] += node.get("alloc_cpus") or 0
        totals["mem"] += node.get("real_memory_mb") or 0
        totals["alloc_mem"] += node.get("alloc_memory_mb") or 0
        totals["gpus"] += node.get("num_gpus") or 0
        totals["alloc_gpus"] += node.get("alloc_gpus") or 0
        partitions.update(node.get("partitions") or ())
    return {
        "nodes": count,
        "states": dict(sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))),
        "partitions": sorted(partitions),
        **totals,
    }


def _summaries(db: Any, user: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    return {
        name: node_summary(d["slurm"] for d in nodes_service.all_nodes(db, user, name))
        for name in names
    }


@bp.get("/clusters")
@login_required
def clusters() -> str:
    user = current_user()
    db = get_db()
    rows = clusters_service.list_clusters(db, get_config(), user)
    return render_template(
        "pages/clusters.html",
        clusters=rows,
        summaries=_summaries(db, user, [r["name"] for r in rows]),
        stale_after=STALE_AFTER_S,
    )


@bp.get("/clusters/<name>")
@login_required
def cluster(name: str) -> str:
    user = current_user()
    db = get_db()
    row = clusters_service.get_cluster(db, get_config(), user, name)
    return render_template(
        "pages/cluster.html",
        cluster=row,
        summary=_summaries(db, user, [name])[name],
        stale_after=STALE_AFTER_S,
    )
