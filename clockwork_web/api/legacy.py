"""The original Clockwork's REST paths, kept so that existing scripts run unchanged.

Same parameter names and answer shapes as the original (a list of jobs rather
than a page, ``{}`` for a job that is not there), over the same services and
visibility rules as the v1 endpoints. Unknown parameters are ignored, as the
original did, but operator-looking names and ``$`` values are refused.
"""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify, request

from clockwork_web.api import bp
from clockwork_web.api.params import me
from clockwork_web.auth.access import api_auth_required
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest, NotFound
from clockwork_web.jobs import service
from clockwork_web.jobs.query import (
    JOB_PARAMS,
    SORT_FIELDS,
    build_job_query,
    parse_job_filters,
    parse_job_id,
    parse_list,
)
from clockwork_web.nodes import service as nodes

#: An unpaginated list (the original's default) returns at most this many jobs.
LEGACY_MAX_ITEMS = 10_000

#: original parameter -> v1 parameter
LEGACY_JOB_PARAMS: dict[str, str] = {
    "username": "user",
    "cluster_name": "cluster",
    "job_state": "state",
    "aggregated_job_state": "state",
    "job_id": "job_id",
    "job_array": "array_job_id",
    "sort_by": "sort",
    "page_num": "page",
    "nbr_items_per_page": "per_page",
}


def _args() -> dict[str, list[str]]:
    """Query string and form values, checked for operator-looking names."""
    args: dict[str, list[str]] = {}
    for source in (request.args, request.form):
        for key, values in source.to_dict(flat=False).items():
            if "$" in key or "[" in key:
                raise BadRequest("operators are not accepted in parameter names", param=key[:60])
            args.setdefault(key, []).extend(values)
    return args


def _one(args: dict[str, list[str]], name: str, required: bool = False) -> str | None:
    values = [v.strip() for v in args.get(name, []) if v.strip()]
    if not values:
        if required:
            raise BadRequest("missing argument", param=name)
        return None
    if values[0].startswith("$"):
        raise BadRequest("values may not start with '$'", param=name)
    return values[0]


@bp.get("/clusters/jobs/list")
@api_auth_required
def legacy_jobs_list() -> Any:
    """The original ``jobs/list``: a list of jobs (``want_count`` adds the total)."""
    args = _args()
    mapped: dict[str, list[str]] = {}
    for old, new in LEGACY_JOB_PARAMS.items():
        if old in args:
            mapped.setdefault(new, []).extend(args[old])
    sort_asc = _one(args, "sort_asc")
    if sort_asc is not None:
        if sort_asc not in ("1", "-1", "0"):
            raise BadRequest("must be 1 or -1", param="sort_asc")
        if sort_asc != "0":
            mapped["order"] = ["asc" if sort_asc == "1" else "desc"]
    if "sort" in mapped and mapped["sort"][0] not in SORT_FIELDS:
        raise BadRequest(f"cannot sort on {mapped['sort'][0][:40]!r}", param="sort_by")
    paginated = "page" in mapped or "per_page" in mapped
    config = get_config()
    filters = parse_job_filters(
        mapped, per_page_default=config.web.per_page_default, allowed=JOB_PARAMS
    )
    want_count = (_one(args, "want_count") or "").lower() in ("1", "true", "yes")
    db = get_db()
    if paginated:
        page = service.list_jobs(db, filters, me(), known_clusters=config.clusters)
        jobs, total = page.items, page.total
    else:
        query, sort = build_job_query(filters, me(), known_clusters=config.clusters)
        jobs = service.find_jobs(db, query, sort, limit=LEGACY_MAX_ITEMS)
        total = len(jobs) if len(jobs) < LEGACY_MAX_ITEMS else service.count_jobs(db, query)
    if want_count:
        return jsonify({"nbr_total_jobs": total, "jobs": jobs})
    return jsonify(jobs)


@bp.get("/clusters/jobs/one")
@api_auth_required
def legacy_jobs_one() -> Any:
    """The original ``jobs/one``: the job, or ``{}`` if there is none to see."""
    args = _args()
    job_id = parse_job_id(_one(args, "job_id", required=True) or "")
    clusters = parse_list(args, "cluster_name")
    mapped = {"job_id": [str(job_id)], **({"cluster": list(clusters)} if clusters else {})}
    filters = parse_job_filters(mapped, allowed=JOB_PARAMS)
    query, sort = build_job_query(filters, me(), known_clusters=get_config().clusters)
    doc = get_db().jobs.find_one(query, service.JOB_PROJECTION, sort=sort)
    return jsonify(doc or {})


def _job_key(args: dict[str, list[str]]) -> tuple[str, int]:
    job_id = parse_job_id(_one(args, "job_id", required=True) or "")
    cluster = _one(args, "cluster_name", required=True) or ""
    return cluster, job_id


def _json_arg(args: dict[str, list[str]], name: str) -> Any:
    body = request.get_json(silent=True)
    if isinstance(body, dict) and name in body:
        return body[name]
    raw = _one(args, name, required=True) or ""
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("must be JSON", param=name) from None


def _body_args() -> dict[str, list[str]]:
    args = _args()
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        for key in ("job_id", "cluster_name"):
            if key in body and not isinstance(body[key], (dict, list)):
                args.setdefault(key, []).append(str(body[key]))
    return args


@bp.get("/clusters/jobs/user_props/get")
@api_auth_required
def legacy_props_get() -> Any:
    """The caller's props of a job (``{}`` if none, or no such job)."""
    cluster, job_id = _job_key(_args())
    try:
        return jsonify(service.get_props(get_db(), cluster, job_id, me()))
    except NotFound:
        return jsonify({})


@bp.put("/clusters/jobs/user_props/set")
@api_auth_required
def legacy_props_set() -> Any:
    """Merge ``updates`` (a JSON object) into the props; returns them."""
    args = _body_args()
    cluster, job_id = _job_key(args)
    updates = _json_arg(args, "updates")
    if not isinstance(updates, dict):
        raise BadRequest("must be a JSON object", param="updates")
    props = service.update_props(
        get_db(), cluster, job_id, me(), updates, max_bytes=get_config().web.props_max_bytes
    )
    return jsonify(props)


@bp.put("/clusters/jobs/user_props/delete")
@api_auth_required
def legacy_props_delete() -> Any:
    """Delete the props named in ``keys`` (a JSON list); answers ``""``."""
    args = _body_args()
    cluster, job_id = _job_key(args)
    keys = _json_arg(args, "keys")
    if isinstance(keys, str):
        keys = [keys]
    service.delete_props(
        get_db(), cluster, job_id, me(), keys, max_bytes=get_config().web.props_max_bytes
    )
    return jsonify("")


@bp.get("/clusters/nodes/list")
@api_auth_required
def legacy_nodes_list() -> Any:
    """Every node the caller may see (optionally of ``cluster_name``), as a list."""
    args = _args()
    return jsonify(nodes.all_nodes(get_db(), me(), _one(args, "cluster_name")))


@bp.get("/clusters/nodes/one")
@api_auth_required
def legacy_nodes_one() -> Any:
    """One node by ``name`` (and ``cluster_name``), or ``{}``."""
    args = _args()
    name = _one(args, "name", required=True) or ""
    cluster = _one(args, "cluster_name")
    user = me()
    if cluster is not None:
        try:
            return jsonify(nodes.get_node(get_db(), cluster, name, user))
        except NotFound:
            return jsonify({})
    from clockwork_web.clusters.service import visible_clusters

    for cluster_name in visible_clusters(get_config(), user):
        try:
            return jsonify(nodes.get_node(get_db(), cluster_name, name, user))
        except NotFound:
            continue
    return jsonify({})
