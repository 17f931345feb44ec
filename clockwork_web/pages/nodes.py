"""Nodes and one node: state with reason, allocation of total, partitions, its jobs.

Listing and lookup are the REST API's (:mod:`clockwork_web.nodes.service`);
the jobs running on a node come through the ``node_jobs`` index.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from clockwork_core.schema import NODE_STATES, STATE_BUCKETS
from clockwork_web.auth.access import current_user, login_required
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest
from clockwork_web.nodes import service
from clockwork_web.pages import bp
from clockwork_web.pages.layout import current_prefs

NODE_JOBS_LIMIT = 200
NODE_JOB_PROJECTION = {
    "_id": 0,
    "cw.user": 1,
    "slurm.cluster_name": 1,
    "slurm.job_id": 1,
    "slurm.name": 1,
    "slurm.job_state": 1,
    "slurm.start_time": 1,
    "slurm.num_cpus": 1,
    "slurm.num_gpus": 1,
    "slurm.mem_mb": 1,
}


def _visible_clusters() -> list[str]:
    user = current_user()
    names = sorted(get_config().clusters)
    return names if user.sees_all_jobs else [n for n in names if n in user.clusters]


@bp.get("/nodes")
@login_required
def nodes() -> tuple[str, int]:
    user = current_user()
    args = {k: [x for x in v if x.strip()] for k, v in request.args.to_dict(flat=False).items()}
    args = {k: v for k, v in args.items() if v}
    error, page = None, None
    filters = service.NodeFilters(per_page=current_prefs().per_page)
    try:
        filters = service.parse_node_filters(args, per_page_default=current_prefs().per_page)
        page = service.list_nodes(get_db(), filters, user)
    except BadRequest as exc:
        error = exc.message
    return (
        render_template(
            "pages/nodes.html",
            page=page,
            filters=filters,
            error=error,
            clusters=_visible_clusters(),
            node_states=sorted(NODE_STATES),
        ),
        400 if error else 200,
    )


def jobs_on_node(db: Any, cluster: str, name: str, user: Any) -> list[dict[str, Any]]:
    """The running jobs on the node ``user`` may see, newest first."""
    query: dict[str, Any] = {
        "cw.node_names": name,
        "slurm.job_state": {"$in": sorted(STATE_BUCKETS["RUNNING"])},
        "slurm.cluster_name": cluster,
    }
    if not user.sees_all_jobs:
        query["cw.user"] = user.email
    docs = list(db.jobs.find(query, NODE_JOB_PROJECTION).limit(NODE_JOBS_LIMIT))
    docs.sort(key=lambda d: d["slurm"].get("job_id") or 0, reverse=True)
    return docs


@bp.get("/nodes/<cluster>/<name>")
@login_required
def node(cluster: str, name: str) -> str:
    user = current_user()
    db = get_db()
    doc = service.get_node(db, cluster, name, user)
    return render_template(
        "pages/node.html",
        node=doc["slurm"],
        cw=doc.get("cw") or {},
        jobs=jobs_on_node(db, cluster, name, user),
        jobs_limit=NODE_JOBS_LIMIT,
    )
