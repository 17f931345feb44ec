"""REST endpoints of submissions, mounted under /api/v1 (``api_bp``).

Thin views: parse the request, call :mod:`.service` / :mod:`.files` with the
logged-in user, shape the answer. Errors are the shared domain errors, mapped
to ``{"error": {"code", "message"}}`` in one place; a duplicate uuid answers
409 with the existing submission as well.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from clockwork_web.auth.access import api_auth_required, current_user, remote_addr
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest
from clockwork_web.jobs.query import parse_int, parse_page, parse_per_page
from clockwork_web.submissions import files, service

api_bp = Blueprint("submissions_api", __name__)


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    return data


def duplicate_response(exc: service.DuplicateSubmission) -> Response:
    body: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
    if exc.submission is not None:
        body["submission"] = service.public_view(exc.submission)
    response = jsonify(body)
    response.status_code = 409
    return response


def created(doc: dict[str, Any]) -> Response:
    response = jsonify(service.public_view(doc))
    # 201: sent to Slurm; 202: accepted, the cluster is unreachable, sent later
    response.status_code = 202 if doc["state"] == service.PENDING else 201
    response.headers["Location"] = f"/api/v1/submissions/{doc['uuid']}"
    return response


@api_bp.post("/submissions")
@api_auth_required
def create_submission() -> Response:
    try:
        doc = service.submit(
            get_db(), get_config(), current_user(), json_body(), remote_addr=remote_addr()
        )
    except service.DuplicateSubmission as exc:
        return duplicate_response(exc)
    return created(doc)


@api_bp.get("/submissions")
@api_auth_required
def list_submissions() -> Response:
    states = [s for raw in request.args.getlist("state") for s in raw.split(",")]
    config = get_config()
    result = service.list_submissions(
        get_db(),
        current_user(),
        states=states,
        cluster=request.args.get("cluster") or None,
        page=parse_page(request.args.get("page")),
        per_page=parse_per_page(
            request.args.get("per_page"),
            default=config.web.per_page_default,
            maximum=service.MAX_PER_PAGE,
        ),
    )
    result["items"] = [service.public_view(d) for d in result["items"]]
    return jsonify(result)


@api_bp.get("/submissions/<uuid>")
@api_auth_required
def get_submission(uuid: str) -> Response:
    db, config = get_db(), get_config()
    doc = service.get_submission(db, current_user(), uuid)
    doc = service.sync_submission(db, config, doc)
    return jsonify(service.public_view(doc))


@api_bp.post("/submissions/<uuid>/cancel")
@api_auth_required
def cancel_submission(uuid: str) -> Response:
    doc = service.cancel(get_db(), get_config(), current_user(), uuid, remote_addr=remote_addr())
    return jsonify(service.public_view(doc))


@api_bp.post("/monitor")
@api_auth_required
def monitor() -> Response:
    try:
        doc = service.adopt(
            get_db(), get_config(), current_user(), json_body(), remote_addr=remote_addr()
        )
    except service.DuplicateSubmission as exc:
        return duplicate_response(exc)
    response = jsonify(service.public_view(doc))
    response.status_code = 201
    return response


@api_bp.get("/submissions/<uuid>/files")
@api_auth_required
def list_files(uuid: str) -> Response:
    doc = service.get_own_submission(get_db(), current_user(), uuid)
    return jsonify({"uuid": doc["uuid"], "files": files.list_files(doc, get_config())})


def file_response(doc: dict[str, Any], path: str) -> Response:
    """Stream one file of ``doc`` with Range support (shared with the pages' tail)."""
    tail = (request.args.get("tail") or "").strip()
    tail_bytes = parse_int(tail, "tail", minimum=1) if tail else None
    try:
        part = files.read_file(
            doc, path, get_config(), range_header=request.headers.get("Range"), tail=tail_bytes
        )
    except files.RangeNotSatisfiable as exc:
        response = jsonify({"error": {"code": exc.code, "message": exc.message}})
        response.status_code = 416
        response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    response = Response(
        stream_with_context(part.chunks),
        status=206 if part.partial else 200,
        mimetype="application/octet-stream",
    )
    response.headers["Content-Length"] = str(part.length)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["X-File-Size"] = str(part.size)
    response.headers["Cache-Control"] = "no-store"
    if part.partial:
        response.headers["Content-Range"] = f"bytes {part.start}-{part.end}/{part.size}"
    return response


@api_bp.get("/submissions/<uuid>/files/<path:path>")
@api_auth_required
def read_file(uuid: str, path: str) -> Response:
    doc = service.get_own_submission(get_db(), current_user(), uuid)
    return file_response(doc, path)
