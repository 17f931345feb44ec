"""Pages: my submissions, one submission with a live tail of its output, the submit form.

The tail is polled by ``static/tail.js`` (no inline script: the CSP forbids
it) from :func:`tail`, a small JSON endpoint with the last bytes of stdout.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from clockwork_web.auth.access import current_user, login_required, remote_addr
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest, ClockworkError, Forbidden, NotFound
from clockwork_web.jobs.query import parse_page
from clockwork_web.submissions import files, service
from clockwork_web.submissions.task import GENERIC_TEMPLATE, NOTIFICATION_METHODS

bp = Blueprint(
    "submissions",
    __name__,
    static_folder="static",
    static_url_path="/submissions/static",
)

TAIL_BYTES = 16 * 1024
#: Slurm options the form offers (the API takes the whole allow-list).
FORM_OPTIONS = ("job_name", "partition", "time", "mem", "cpus_per_task", "gres", "account")


def _submit_clusters(user: Any) -> list[str]:
    config = get_config()
    return [
        name
        for name, cluster in config.clusters.items()
        if cluster.submit.backend != "none" and name in user.cluster_accounts
    ]


@bp.get("/submissions")
@login_required
def index() -> str:
    user = current_user()
    result = service.list_submissions(
        get_db(), user, page=parse_page(request.args.get("page")), per_page=50
    )
    return render_template(
        "submissions/index.html",
        submissions=[service.public_view(d) for d in result["items"]],
        page=result["page"],
        has_more=result["has_more"],
    )


@bp.get("/submissions/<uuid>")
@login_required
def detail(uuid: str) -> str:
    db, config = get_db(), get_config()
    doc = service.get_submission(db, current_user(), uuid)
    doc = service.sync_submission(db, config, doc, use_backend=False)
    return render_template(
        "submissions/detail.html",
        s=service.public_view(doc),
        final=doc["state"] in service.FINAL_STATES,
        mine=doc["user_email"] == current_user().email,
    )


@bp.get("/submissions/<uuid>/tail.json")
@login_required
def tail(uuid: str) -> Response:
    """The submission's state and the last bytes of its stdout."""
    db, config = get_db(), get_config()
    doc = service.get_own_submission(db, current_user(), uuid)
    doc = service.sync_submission(db, config, doc)
    text, size = "", 0
    if doc.get("stdout"):
        try:
            part = files.read_file(doc, "stdout", config, tail=TAIL_BYTES)
            text = b"".join(part.chunks).decode("utf-8", "replace")
            size = part.size
        except ClockworkError:
            text = ""
    return jsonify(
        {
            "state": doc["state"],
            "final": doc["state"] in service.FINAL_STATES,
            "size": size,
            "text": text,
        }
    )


@bp.post("/submissions/<uuid>/cancel")
@login_required
def cancel(uuid: str) -> Response:
    try:
        service.cancel(get_db(), get_config(), current_user(), uuid, remote_addr=remote_addr())
        flash("Cancel requested.", "success")
    except ClockworkError as exc:
        if isinstance(exc, NotFound):
            raise
        flash(exc.message, "error")
    return redirect(url_for("submissions.detail", uuid=uuid))


def _form_task(form: Any) -> dict[str, Any]:
    """The task dict from the form's fields (the same validation as the API follows)."""
    task: dict[str, Any] = {
        "uuid": form.get("uuid") or str(uuid_module.uuid4()),
        "cluster": form.get("cluster") or None,
        "name": form.get("template") or GENERIC_TEMPLATE,
    }
    script = (form.get("script") or "").replace("\r\n", "\n")
    cmd = (form.get("cmd") or "").strip()
    if script.strip():
        task["script"] = script
    if cmd:
        task["cmd"] = cmd
        params = [p for p in (form.get("params") or "").replace("\r\n", "\n").split("\n") if p]
        if params:
            task["params"] = params
    slurm = {k: form.get(k).strip() for k in FORM_OPTIONS if (form.get(k) or "").strip()}
    if slurm:
        task["slurm"] = slurm
    if (form.get("cwd") or "").strip():
        task["cwd"] = form["cwd"].strip()
    methods = [m for m in form.getlist("notify") if m in NOTIFICATION_METHODS]
    if methods:
        task["notification"] = {"methods": methods}
    return task


@bp.route("/submissions/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    user = current_user()
    config = get_config()
    clusters = _submit_clusters(user)
    error = None
    form: Any = request.form if request.method == "POST" else {}
    if request.method == "POST":
        if not clusters:
            raise Forbidden("you have no account on a cluster that accepts submissions")
        try:
            doc = service.submit(
                get_db(), config, user, _form_task(request.form), remote_addr=remote_addr()
            )
        except service.DuplicateSubmission as exc:
            if exc.submission:
                return redirect(url_for("submissions.detail", uuid=exc.submission["uuid"]))
            error = exc.message
        except (BadRequest, Forbidden) as exc:
            error = exc.message
        else:
            if doc["state"] == service.PENDING:
                flash("The cluster is unreachable: the job will be sent when it is back.", "info")
            return redirect(url_for("submissions.detail", uuid=doc["uuid"]))
    wanted = request.args.get("template")
    if request.method == "GET" and wanted and wanted not in config.templates:
        abort(404)
    response = render_template(
        "submissions/new.html",
        clusters=clusters,
        templates=[(GENERIC_TEMPLATE, "Generic: your own command or script")]
        + [(name, t.description or name) for name, t in config.templates.items()],
        options=FORM_OPTIONS,
        methods=NOTIFICATION_METHODS,
        form=form,
        error=error,
        new_uuid=str(uuid_module.uuid4()),
        checked=request.form.getlist("notify") if request.method == "POST" else [],
    )
    return (response, 400) if error else response
