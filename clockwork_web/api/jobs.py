"""``/api/v1/jobs``: the listing, one job, and the owner's props of a job."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from clockwork_web.api import bp
from clockwork_web.api.params import json_object, me, page_json, query_args
from clockwork_web.auth.access import api_auth_required
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest
from clockwork_web.jobs import service
from clockwork_web.jobs.query import parse_job_filters, parse_job_id, parse_list, reject_unknown


@bp.get("/jobs")
@api_auth_required
def list_jobs() -> Any:
    """The jobs the caller may see, filtered, sorted and paginated."""
    config = get_config()
    filters = parse_job_filters(query_args(), per_page_default=config.web.per_page_default)
    page = service.list_jobs(get_db(), filters, me(), known_clusters=config.clusters)
    return jsonify(page_json(page))


@bp.get("/jobs/<cluster>/<job_id>")
@api_auth_required
def get_job(cluster: str, job_id: str) -> Any:
    """One job, with the caller's props on it."""
    reject_unknown(query_args(), ())
    return jsonify(service.get_job(get_db(), cluster, parse_job_id(job_id), me()))


@bp.get("/jobs/<cluster>/<job_id>/props")
@api_auth_required
def get_props(cluster: str, job_id: str) -> Any:
    """The props the caller attached to the job."""
    reject_unknown(query_args(), ())
    return jsonify(service.get_props(get_db(), cluster, parse_job_id(job_id), me()))


@bp.patch("/jobs/<cluster>/<job_id>/props")
@api_auth_required
def update_props(cluster: str, job_id: str) -> Any:
    """Merge a JSON object into the job's props (the job's owner only)."""
    reject_unknown(query_args(), ())
    body = json_object()
    props = service.update_props(
        get_db(),
        cluster,
        parse_job_id(job_id),
        me(),
        body,
        max_bytes=get_config().web.props_max_bytes,
    )
    return jsonify(props)


@bp.delete("/jobs/<cluster>/<job_id>/props")
@api_auth_required
def delete_props(cluster: str, job_id: str) -> Any:
    """Remove the named props (``?keys=a,b`` or a body ``{"keys": [...]}``), or all."""
    args = query_args()
    reject_unknown(args, ("keys",))
    keys: list[str] | None = list(parse_list(args, "keys")) or None
    if keys is None and request.data:
        body = json_object()
        if set(body) - {"keys"}:
            raise BadRequest("the body may only hold 'keys'", param="body")
        keys = body.get("keys")
        if keys is None:
            raise BadRequest("a list of prop names is required", param="keys")
    props = service.delete_props(
        get_db(),
        cluster,
        parse_job_id(job_id),
        me(),
        keys,
        max_bytes=get_config().web.props_max_bytes,
    )
    return jsonify(props)
