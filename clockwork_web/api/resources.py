"""``/api/v1``: clusters, GPUs, the caller's account, usage statistics."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from clockwork_web.api import bp
from clockwork_web.api.params import me, query_args
from clockwork_web.auth.access import api_auth_required
from clockwork_web.clusters import service as clusters
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest
from clockwork_web.gpus import service as gpus
from clockwork_web.jobs.query import parse_datetime, reject_unknown
from clockwork_web.stats import service as stats


@bp.get("/clusters")
@api_auth_required
def list_clusters() -> Any:
    """The clusters the caller may see, with when their data was last refreshed."""
    reject_unknown(query_args(), ())
    return jsonify({"items": clusters.list_clusters(get_db(), get_config(), me())})


@bp.get("/gpus")
@api_auth_required
def list_gpus() -> Any:
    """The GPU models and their specs."""
    reject_unknown(query_args(), ())
    return jsonify({"items": gpus.list_gpus(get_db())})


@bp.get("/me")
@api_auth_required
def whoami() -> Any:
    """The caller's account."""
    reject_unknown(query_args(), ())
    user = me()
    return jsonify(
        {
            "email": user.email,
            "display_name": user.display_name,
            "status": user.status,
            "roles": list(user.roles),
            "cluster_accounts": user.cluster_accounts,
            "clusters": clusters.visible_clusters(get_config(), user),
            "settings": user.settings,
        }
    )


@bp.get("/stats/usage")
@api_auth_required
def usage() -> Any:
    """CPU-hours and GPU-hours per user, account or cluster over a period."""
    args = query_args()
    reject_unknown(args, ("group_by", "start", "end", "cluster"))
    single: dict[str, str] = {}
    for name, values in args.items():
        if len(values) != 1 or not values[0].strip():
            raise BadRequest("give exactly one non-empty value", param=name)
        if values[0].startswith("$"):
            raise BadRequest("values may not start with '$'", param=name)
        single[name] = values[0].strip()
    for required in ("start", "end"):
        if required not in single:
            raise BadRequest("is required (ISO 8601 or epoch seconds)", param=required)
    report = stats.usage(
        get_db(),
        me(),
        group_by=single.get("group_by", "user"),
        start=parse_datetime(single["start"], "start"),
        end=parse_datetime(single["end"], "end"),
        cluster=single.get("cluster"),
    )
    return jsonify(report)
