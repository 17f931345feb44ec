"""Job search (filters, sort, columns, folded arrays, CSV/JSON export) and the job page.

The search parses its parameters with the REST API's own
:func:`~clockwork_web.jobs.query.parse_job_filters` and lists with
:func:`~clockwork_web.jobs.service.list_jobs`, so the page and ``GET
/api/v1/jobs`` always agree on what a user sees. Page-only parameters
(``columns``, ``fold``) are taken out first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_timezone
from flask_babel import gettext as _

from clockwork_core.schema import JOB_STATES, STATE_BUCKETS, state_bucket
from clockwork_web.auth.access import audit, current_user, login_required
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import BadRequest, ClockworkError
from clockwork_web.i18n import date_format
from clockwork_web.jobs import service
from clockwork_web.jobs.query import (
    JOB_PARAMS,
    JobFilters,
    build_job_query,
    parse_job_filters,
    parse_job_id,
)
from clockwork_web.jsonenc import iso_utc
from clockwork_web.pages import bp
from clockwork_web.pages.job_table import TableContext, row_cells
from clockwork_web.pages.layout import current_prefs
from clockwork_web.pages.prefs import JOB_COLUMNS

#: Parameters of the page that the REST listing does not know.
PAGE_ONLY_PARAMS = ("columns", "fold")
#: What the export links carry over from the search: its filters, never a
#: page or a name ``url_for`` takes for itself (``_external``, ``_scheme``,
#: ``_anchor``, ``_method``, ``endpoint``, ``fmt``), which a crafted query
#: string would otherwise pass to it (a TypeError, or a link of its choosing).
EXPORT_PARAMS = JOB_PARAMS - {"page", "per_page"}
#: Rows an export streams at most.
EXPORT_MAX = 100_000
#: Array tasks read to count an array's states, at most.
ARRAY_COUNT_CAP = 20_000
#: The job page lists the array tasks whose ids are this close to its own
#: (the index ``array_task`` reads just those); the search lists them all.
SIBLINGS_AROUND = 12

#: Columns of the CSV export, in order: (header, path in the ``slurm`` dict).
EXPORT_FIELDS: tuple[str, ...] = (
    "cluster_name",
    "job_id",
    "array_job_id",
    "array_task_id",
    "name",
    "username",
    "account",
    "partition",
    "qos",
    "job_state",
    "exit_code",
    "signal",
    "submit_time",
    "start_time",
    "end_time",
    "time_limit",
    "num_nodes",
    "num_cpus",
    "mem_mb",
    "num_gpus",
    "gpu_type",
    "nodes",
    "working_directory",
)


def _known_clusters() -> list[str]:
    return list(get_config().clusters)


def _filters_from_request(per_page_default: int) -> tuple[JobFilters, dict[str, list[str]]]:
    """The validated filters, and the raw arguments (for the form)."""
    args = request.args.to_dict(flat=False)
    listing_args = {k: v for k, v in args.items() if k not in PAGE_ONLY_PARAMS}
    # an empty form field means "any"
    listing_args = {k: [x for x in v if x.strip()] for k, v in listing_args.items()}
    listing_args = {k: v for k, v in listing_args.items() if v}
    return parse_job_filters(listing_args, per_page_default=per_page_default), args


def _chosen_columns(args: Mapping[str, list[str]]) -> list[str]:
    wanted = [c for raw in args.get("columns", []) for c in raw.split(",") if c in JOB_COLUMNS]
    columns = wanted or list(current_prefs().job_columns)
    user = current_user()
    if not user.sees_all_jobs and "user" in columns and not wanted:
        columns.remove("user")  # it is always them
    return [c for c in JOB_COLUMNS if c in columns]


def fold_arrays(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the table: array tasks of one array on this page become one row.

    Each row is ``{"doc": first document, "tasks": [documents] or None}``.
    """
    rows: list[dict[str, Any]] = []
    index: dict[tuple[str, int], dict[str, Any]] = {}
    for doc in items:
        slurm = doc["slurm"]
        array_id = slurm.get("array_job_id")
        if array_id is None:
            rows.append({"doc": doc, "tasks": None})
            continue
        key = (slurm["cluster_name"], array_id)
        row = index.get(key)
        if row is None:
            row = {"doc": doc, "tasks": [doc], "key": key}
            index[key] = row
            rows.append(row)
        else:
            row["tasks"].append(doc)
    return rows


def array_state_counts(
    db: Any, keys: list[tuple[str, int]], user: Any
) -> dict[tuple[str, int], dict[str, int]]:
    """Per array (cluster, array id): how many of its tasks are in each bucket."""
    if not keys:
        return {}
    query: dict[str, Any] = {"slurm.array_job_id": {"$in": sorted({k[1] for k in keys})}}
    if not user.sees_all_jobs:
        query["cw.user"] = user.email
    query["slurm.cluster_name"] = {"$in": sorted({k[0] for k in keys})}
    counts: dict[tuple[str, int], dict[str, int]] = {k: {} for k in keys}
    cursor = db.jobs.find(
        query, {"_id": 0, "slurm.cluster_name": 1, "slurm.array_job_id": 1, "slurm.job_state": 1}
    ).limit(ARRAY_COUNT_CAP)
    for doc in cursor:
        s = doc["slurm"]
        key = (s["cluster_name"], s["array_job_id"])
        if key in counts:
            bucket = state_bucket(s["job_state"])
            counts[key][bucket] = counts[key].get(bucket, 0) + 1
    return counts


def _visible_clusters() -> list[str]:
    user = current_user()
    names = set(_known_clusters())
    if not user.sees_all_jobs:
        return sorted(user.clusters)
    return sorted(names | set(user.clusters))


@bp.get("/jobs")
@login_required
def jobs() -> tuple[str, int]:
    user = current_user()
    prefs = current_prefs()
    error = None
    page = None
    filters = JobFilters(per_page=prefs.per_page)
    args = request.args.to_dict(flat=False)
    try:
        filters, args = _filters_from_request(prefs.per_page)
        page = service.list_jobs(get_db(), filters, user, known_clusters=_known_clusters())
    except BadRequest as exc:
        error = exc.message
    columns = _chosen_columns(args)
    fold = request.args.get("fold") == "1"
    rows: list[dict[str, Any]] = []
    array_counts: dict[tuple[str, int], dict[str, int]] = {}
    if page is not None:
        if fold:
            rows = fold_arrays(page.items)
            keys = [r["key"] for r in rows if r.get("key")]
            array_counts = array_state_counts(get_db(), keys, user)
        else:
            rows = [{"doc": d, "tasks": None} for d in page.items]
    export_args = {k: v for k, v in args.items() if k in EXPORT_PARAMS}
    table = TableContext(
        jobs_path=url_for("pages.jobs") + "/",
        now=datetime.now(UTC),
        timezone=get_timezone(),
        date_format=date_format(),
        signal_label=lambda n: _("signal %(n)s", n=n),
    )
    return (
        render_template(
            "pages/jobs.html",
            row_cells=lambda doc: row_cells(doc, columns, table),
            error=error,
            page=page,
            rows=rows,
            filters=filters,
            args=args,
            columns=columns,
            all_columns=JOB_COLUMNS,
            fold=fold,
            array_counts=array_counts,
            clusters=_visible_clusters(),
            buckets=list(STATE_BUCKETS),
            base_states=sorted(JOB_STATES),
            export_args=export_args,
            export_max=EXPORT_MAX,
        ),
        400 if error else 200,
    )


# --------------------------------------------------------------------------- export


def _csv_cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with '."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _export_cursor(filters: JobFilters) -> Any:
    user = current_user()
    db = get_db()
    if filters.prop_name is not None:
        filters = replace(filters, prop_matches=service._prop_matches(db, filters, user))
    query, sort = build_job_query(filters, user, known_clusters=_known_clusters())
    # trimmed here: the embedded database deep-copies each document it projects
    cursor = db.jobs.find(query).sort(sort).limit(EXPORT_MAX).batch_size(1000)
    return (service.public_job(doc) for doc in cursor)


def csv_rows(docs: Iterator[Mapping[str, Any]]) -> Iterator[str]:
    """The CSV text of ``docs``, a chunk per 500 rows (header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*EXPORT_FIELDS, "user"])
    for i, doc in enumerate(docs, 1):
        slurm = doc.get("slurm", {})
        writer.writerow(
            [_csv_cell(slurm.get(f)) for f in EXPORT_FIELDS]
            + [_csv_cell((doc.get("cw") or {}).get("user"))]
        )
        if i % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_rows(docs: Iterator[Mapping[str, Any]]) -> Iterator[str]:
    """A JSON array of ``docs`` (the REST API's job shape), streamed."""
    dumps = current_app.json.dumps
    yield "[\n"
    first = True
    for doc in docs:
        yield ("" if first else ",\n") + dumps(doc)
        first = False
    yield "\n]\n"


@bp.get("/jobs/export.<fmt>")
@login_required
def jobs_export(fmt: str) -> Response:
    if fmt not in ("csv", "json"):
        raise BadRequest("export as csv or json", param="format")
    filters, _args = _filters_from_request(current_prefs().per_page)
    cursor = _export_cursor(filters)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        body, mimetype = csv_rows(cursor), "text/csv; charset=utf-8"
    else:
        body, mimetype = json_rows(cursor), "application/json"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="jobs-{stamp}.{fmt}"'
    return response


# --------------------------------------------------------------------------- one job


def efficiency_hints(slurm: Mapping[str, Any]) -> list[str]:
    """Plain advice when a finished job used much less than it asked for."""
    hints = []
    cpu = slurm.get("cpu_efficiency")
    mem = slurm.get("mem_efficiency")
    if cpu is not None and cpu < 0.5 and (slurm.get("num_cpus") or 0) > 1:
        hints.append(
            _(
                "This job used %(pct)s%% of its CPUs: asking for fewer CPUs would start "
                "similar jobs sooner.",
                pct=round(cpu * 100),
            )
        )
    if mem is not None and mem < 0.25:
        hints.append(
            _(
                "This job used %(pct)s%% of the memory it asked for: asking for less would "
                "start similar jobs sooner.",
                pct=round(mem * 100),
            )
        )
    return hints


def siblings_of(db: Any, slurm: Mapping[str, Any], user: Any) -> list[dict[str, Any]]:
    """The tasks of the job's array (visible ones) around its own task id, by task id."""
    array_id = slurm.get("array_job_id")
    if array_id is None:
        return []
    task = slurm.get("array_task_id")
    low = max(0, task - SIBLINGS_AROUND) if isinstance(task, int) else 0
    # the index's two fields alone: with more clauses the embedded database
    # planned on the array id only and read every task
    query = {
        "slurm.array_job_id": array_id,
        "slurm.array_task_id": {"$gte": low, "$lte": low + 2 * SIBLINGS_AROUND},
    }
    cluster = slurm["cluster_name"]
    docs = [
        d
        for d in db.jobs.find(query).limit(2 * SIBLINGS_AROUND + 1)
        if d["slurm"].get("cluster_name") == cluster
        and (user.sees_all_jobs or (d.get("cw") or {}).get("user") == user.email)
    ]
    docs.sort(key=lambda d: d["slurm"].get("array_task_id") or 0)
    return docs


def _job_context(cluster: str, job_id: int) -> dict[str, Any]:
    user = current_user()
    db = get_db()
    doc = service.get_job(db, cluster, job_id, user)
    slurm = doc["slurm"]
    now = datetime.now(UTC)
    start, end = slurm.get("start_time"), slurm.get("end_time")
    elapsed = None
    if start is not None:
        end_or_now = end or now
        elapsed = (end_or_now - start).total_seconds()
    wait = None
    if slurm.get("submit_time") is not None:
        wait = ((start or now) - slurm["submit_time"]).total_seconds()
    return {
        "doc": doc,
        "job": slurm,
        "cw": doc.get("cw") or {},
        "props": doc.get("user_props") or {},
        "owner": (doc.get("cw") or {}).get("user") == user.email,
        "elapsed": elapsed,
        "wait": wait,
        "hints": efficiency_hints(slurm),
        "siblings": siblings_of(db, slurm, user),
        "known_cluster": cluster in get_config().clusters,
    }


@bp.get("/jobs/<cluster>/<job_id>")
@login_required
def job(cluster: str, job_id: str) -> str:
    """One job; the id is read as the API reads it (a 400 for one no job can have)."""
    return render_template("pages/job.html", **_job_context(cluster, parse_job_id(job_id)))


def _props_from_form(form: Mapping[str, list[str]]) -> tuple[dict[str, str], list[str]]:
    """(updates, deletions) from the props form's rows ``name``/``value``/``delete``."""
    names = form.get("name", [])
    values = form.get("value", [])
    deleted = set(form.get("delete", []))
    updates: dict[str, str] = {}
    removals: list[str] = []
    for i, name in enumerate(names):
        name = name.strip()
        value = values[i] if i < len(values) else ""
        if not name:
            continue
        if name in deleted:
            removals.append(name)
        else:
            updates[name] = value
    for name in form.get("original", []):
        if name and name not in updates and name not in removals and name not in names:
            removals.append(name)
    return updates, removals


@bp.post("/jobs/<cluster>/<job_id>/props")
@login_required
def job_props(cluster: str, job_id: str) -> Any:
    number = parse_job_id(job_id)
    user = current_user()
    db = get_db()
    updates, removals = _props_from_form(request.form.to_dict(flat=False))
    limit = get_config().web.props_max_bytes
    try:
        if removals:
            service.delete_props(db, cluster, number, user, removals, max_bytes=limit)
        if updates:
            service.update_props(db, cluster, number, user, updates, max_bytes=limit)
    except BadRequest as exc:
        context = _job_context(cluster, number)
        context["props_error"] = exc.message
        return render_template("pages/job.html", **context), 400
    except ClockworkError:
        raise
    audit("job.props", f"{cluster}/{number}", "ok", updated=sorted(updates), removed=removals)
    flash(_("Props saved."), "success")
    return redirect(url_for("pages.job", cluster=cluster, job_id=number) + "#props")
