"""The original slurm-proxy interface (``POST /submit``, ``/monitor``...), now authenticated.

Scripts written for slurm-proxy keep working: they send ``{"task": {slurm,
dirs, cmd, params, notification, uuid, username, cwd}}`` (or the task object
itself) and read back ``task_uuid``/``slurm_job_id``/``state``. Differences:
the caller must authenticate (an API token, ``Authorization: Bearer`` or Basic
``email:token``, or the browser session with its CSRF token), and
``task.username`` must be the caller's own account on that cluster (else 403):
it is checked, never used as an identity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from clockwork_web.auth import csrf
from clockwork_web.auth.access import (
    SAFE_METHODS,
    _load_token_user,
    api_auth_required,
    current_user,
    remote_addr,
)
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest
from clockwork_web.jobs.query import parse_job_id
from clockwork_web.submissions import service
from clockwork_web.submissions.api import duplicate_response, json_body

bp = Blueprint("slurm_proxy", __name__)
csrf.exempt(bp)  # checked in proxy_auth_required, once we know how the caller authenticates

F = TypeVar("F", bound=Callable[..., Any])


def proxy_auth_required(view: F) -> F:
    """Token (outside /api/ too, for slurm-proxy clients) or session + CSRF, else 401."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization")
        if header:
            g.user = None
            _load_token_user(header)
        elif request.method not in SAFE_METHODS and g.get("user") is not None:
            csrf.protect()
        return api_auth_required(view)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def task_of(data: dict[str, Any]) -> dict[str, Any]:
    task = data.get("task", data)
    if not isinstance(task, dict):
        raise BadRequest("must be an object", param="task")
    return task


def default_cluster(task: dict[str, Any]) -> None:
    """slurm-proxy served one cluster: without ``cluster``, the caller's only one."""
    if "cluster" in task:
        return
    config, user = get_config(), current_user()
    mine = [
        name
        for name, cluster in config.clusters.items()
        if cluster.submit.backend != "none" and name in user.cluster_accounts
    ]
    if len(mine) == 1:
        task["cluster"] = mine[0]


def proxy_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = service.public_view(doc)
    return {
        "task_uuid": doc["uuid"],
        "slurm_job_id": doc.get("job_id"),
        "state": doc.get("state"),
        "submission": view,
    }


@bp.post("/submit")
@proxy_auth_required
def submit() -> Response:
    task = dict(task_of(json_body()))
    claimed = task.pop("username", None)
    default_cluster(task)
    try:
        doc = service.submit(
            get_db(),
            get_config(),
            current_user(),
            task,
            remote_addr=remote_addr(),
            source="proxy",
            claimed_username=claimed if claimed is not None else None,
        )
    except service.DuplicateSubmission as exc:
        return duplicate_response(exc)
    response = jsonify(proxy_view(doc))
    response.status_code = 202 if doc["state"] == service.PENDING else 201
    return response


@bp.post("/monitor")
@proxy_auth_required
def monitor() -> Response:
    task = dict(task_of(json_body()))
    claimed = task.pop("username", None)
    if "slurm_job_id" in task:
        task["job_id"] = task.pop("slurm_job_id")
    extra = set(task) - {"cluster", "job_id", "uuid", "notification"}
    for key in extra & {"slurm", "dirs", "cmd", "params", "cwd"}:
        task.pop(key)  # slurm-proxy clients resend the whole task; only these matter here
    try:
        doc = service.adopt(
            get_db(),
            get_config(),
            current_user(),
            task,
            remote_addr=remote_addr(),
            claimed_username=claimed,
        )
    except service.DuplicateSubmission as exc:
        return duplicate_response(exc)
    response = jsonify(proxy_view(doc))
    response.status_code = 201
    return response


@bp.get("/monitor/slurm_job_id/<job_id>")
@proxy_auth_required
def monitor_job(job_id: str) -> Response:
    """The submission of a Slurm job id (parsed as every route parses one: 400 past int64)."""
    number = parse_job_id(job_id)
    db, config = get_db(), get_config()
    cluster = request.args.get("cluster")
    if cluster is None and len(config.clusters) == 1:
        cluster = next(iter(config.clusters))
    if not cluster or cluster not in config.clusters:
        raise BadRequest("name the cluster (?cluster=...)", param="cluster")
    doc = service.find_by_job(db, current_user(), cluster, number)
    return jsonify(proxy_view(service.sync_submission(db, config, doc)))


@bp.get("/monitor/task_uuid/<uuid>")
@proxy_auth_required
def monitor_task(uuid: str) -> Response:
    db, config = get_db(), get_config()
    doc = service.get_submission(db, current_user(), uuid)
    return jsonify(proxy_view(service.sync_submission(db, config, doc)))
