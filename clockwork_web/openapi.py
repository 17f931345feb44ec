"""The OpenAPI 3.1 document of ``/api/v1``, generated from the app's URL map.

Every ``/api/v1`` rule becomes a path; its operation comes from
:data:`OPERATIONS` (by endpoint name), from a ``cw_openapi`` dict another
package sets on its view, or, failing both, a generic one built from the
view's docstring. ``clockwork_web_test/test_openapi.py`` checks that the
routes and the document agree and that every operation of this package is
written out in full. The same dict renders the reference page.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from clockwork_web.errors import MAX_URI_BYTES
from clockwork_web.jobs.query import MAX_PAGE, MAX_PER_PAGE
from clockwork_web.submissions.service import MAX_PER_PAGE as MAX_SUBMISSIONS_PER_PAGE

API_PREFIX = "/api/v1"
METHODS = ("get", "post", "put", "patch", "delete")

_ERR = {"$ref": "#/components/responses/Error"}


def _param(
    name: str,
    where: str = "query",
    schema: dict[str, Any] | None = None,
    description: str = "",
    required: bool = False,
    explode: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema or {"type": "string"},
    }
    if description:
        out["description"] = description
    if explode is not None:
        out["explode"] = explode
        out["style"] = "form"
    return out


def _list(name: str, description: str, item: dict[str, Any] | None = None) -> dict[str, Any]:
    return _param(
        name,
        schema={"type": "array", "items": item or {"type": "string"}, "maxItems": 200},
        description=description + " (repeat the parameter or separate values with commas)",
        explode=True,
    )


DATE = {"type": "string", "description": "ISO 8601 date/time (UTC if no offset) or epoch seconds"}
STATE_NAMES = ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
PAGE = _param("page", schema={"type": "integer", "minimum": 1, "maximum": MAX_PAGE})
PAGE_PARAMS = [
    PAGE,
    _param("per_page", schema={"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
]
CLUSTER = _param("cluster", "path", description="cluster name")
UUID = _param("uuid", "path", description="the submission's uuid")
JOB_ID = _param("job_id", "path", {"type": "integer", "minimum": 0}, "Slurm job id")


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _ERR for code in ("400", "401", "403", *codes)}


def _op(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    codes: tuple[str, ...] = (),
    public: bool = False,
    ok_code: str = "200",
    more_ok: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": params or [],
        "responses": {ok_code: ok, **(more_ok or {}), **({} if public else _errors(*codes))},
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if public:
        op["security"] = []
    return op


def _items(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)}}}


def _page(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "page", "per_page", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "next": {"type": ["string", "null"], "description": "path of the next page"},
        },
    }


JOB_FILTERS = [
    _list("cluster", "cluster names"),
    _list("user", "Clockwork user emails, or Slurm usernames"),
    _list("state", "Slurm states or the buckets PENDING, RUNNING, COMPLETED, FAILED"),
    _list("job_id", "job ids", {"type": "integer", "minimum": 0}),
    _param("array_job_id", schema={"type": "integer", "minimum": 0}),
    _param("name", description="substring of the job name, case-insensitive"),
    _list("partition", "partitions"),
    _list("account", "Slurm accounts"),
    _param("submitted_after", schema=DATE),
    _param("submitted_before", schema=DATE),
    _param("prop_name", description="only jobs carrying this prop of yours"),
    _param("prop_value", description="with this value (needs prop_name)"),
    _param(
        "sort",
        schema={
            "type": "string",
            "enum": [
                "submit_time",
                "start_time",
                "end_time",
                "job_id",
                "cluster",
                "cluster_name",
                "user",
                "username",
                "job_state",
                "state",
                "name",
            ],
        },
    ),
    _param("order", schema={"type": "string", "enum": ["asc", "desc"]}),
    *PAGE_PARAMS,
]

LEGACY_JOB_PARAMS = [
    _param("username", description="Clockwork user email"),
    _param("cluster_name", description="cluster names, comma-separated"),
    _param("job_state", description="Slurm states, comma-separated"),
    _param("aggregated_job_state", description="state buckets, comma-separated"),
    _param("job_id", description="job ids, comma-separated"),
    _param("job_array", schema={"type": "integer", "minimum": 0}),
    _param("sort_by"),
    _param("sort_asc", schema={"type": "integer", "enum": [-1, 0, 1]}),
    _param("page_num", schema={"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
    _param("nbr_items_per_page", schema={"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
    _param("want_count", schema={"type": "boolean"}),
]

PROPS_BODY = {"type": "object", "additionalProperties": True}
#: A submission: a command (``cmd``, ``params``) or a ``script``, on a cluster.
TASK_BODY = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string"},
        "cluster": {"type": "string"},
        "name": {"type": "string", "description": "a template name"},
        "cmd": {"type": "array", "items": {"type": "string"}},
        "params": {"type": "array", "items": {"type": "string"}},
        "script": {"type": "string"},
        "slurm": {"type": "object", "description": "allow-listed sbatch options"},
        "cwd": {"type": "string"},
        "dirs": {"type": "array", "items": {"type": "string"}},
        "notification": {"type": "object"},
    },
}

#: endpoint -> operation (one per endpoint; all its methods share its rule).
OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "api.list_jobs": {
        "get": _op("List jobs", "jobs", _ok(_ref("JobPage")), JOB_FILTERS),
    },
    "api.get_job": {
        "get": _op("One job", "jobs", _ok(_ref("Job")), [CLUSTER, JOB_ID], codes=("404",)),
    },
    "api.get_props": {
        "get": _op(
            "Your props of a job", "jobs", _ok(_ref("Props")), [CLUSTER, JOB_ID], codes=("404",)
        ),
    },
    "api.update_props": {
        "patch": _op(
            "Merge props into a job's (owner only)",
            "jobs",
            _ok(_ref("Props")),
            [CLUSTER, JOB_ID],
            body=PROPS_BODY,
            codes=("404", "409"),
        ),
    },
    "api.delete_props": {
        "delete": _op(
            "Delete props of a job (owner only)",
            "jobs",
            _ok(_ref("Props")),
            [CLUSTER, JOB_ID, _list("keys", "prop names; none: all")],
            codes=("404", "409"),
        ),
    },
    "api.list_nodes": {
        "get": _op(
            "List nodes",
            "nodes",
            _ok(_ref("NodePage")),
            [
                _list("cluster", "cluster names"),
                _list("state", "node states"),
                _param("name", description="substring of the node name"),
                *PAGE_PARAMS,
            ],
        ),
    },
    "api.get_node": {
        "get": _op(
            "One node",
            "nodes",
            _ok(_ref("Node")),
            [CLUSTER, _param("name", "path", description="node name")],
            codes=("404",),
        ),
    },
    "api.list_clusters": {
        "get": _op("Clusters and their data's freshness", "clusters", _ok(_items("Cluster"))),
    },
    "api.list_gpus": {"get": _op("GPU models", "clusters", _ok(_items("Gpu")))},
    "api.whoami": {"get": _op("Your account", "account", _ok(_ref("Me")))},
    "api.usage": {
        "get": _op(
            "CPU-hours and GPU-hours over a period",
            "stats",
            _ok(_ref("Usage")),
            [
                _param(
                    "group_by", schema={"type": "string", "enum": ["user", "account", "cluster"]}
                ),
                _param("start", schema=DATE, required=True),
                _param("end", schema=DATE, required=True),
                _param("cluster"),
            ],
        ),
    },
    "api.legacy_jobs_list": {
        "get": _op(
            "Original Clockwork: list jobs",
            "original API",
            _ok({"oneOf": [{"type": "array", "items": _ref("Job")}, {"type": "object"}]}),
            LEGACY_JOB_PARAMS,
        ),
    },
    "api.legacy_jobs_one": {
        "get": _op(
            "Original Clockwork: one job ({} if none)",
            "original API",
            _ok({"type": "object"}),
            [
                _param("job_id", schema={"type": "integer", "minimum": 0}, required=True),
                _param("cluster_name"),
            ],
        ),
    },
    "api.legacy_props_get": {
        "get": _op(
            "Original Clockwork: your props of a job",
            "original API",
            _ok(_ref("Props")),
            [
                _param("job_id", schema={"type": "integer", "minimum": 0}, required=True),
                _param("cluster_name", required=True),
            ],
        ),
    },
    "api.legacy_props_set": {
        "put": _op(
            "Original Clockwork: merge props",
            "original API",
            _ok(_ref("Props")),
            body={
                "type": "object",
                "required": ["job_id", "cluster_name", "updates"],
                "properties": {
                    "job_id": {"type": "integer", "minimum": 0},
                    "cluster_name": {"type": "string"},
                    "updates": PROPS_BODY,
                },
            },
            codes=("404", "409"),
        ),
    },
    "api.legacy_props_delete": {
        "put": _op(
            "Original Clockwork: delete props",
            "original API",
            _ok({"type": "string"}),
            body={
                "type": "object",
                "required": ["job_id", "cluster_name", "keys"],
                "properties": {
                    "job_id": {"type": "integer", "minimum": 0},
                    "cluster_name": {"type": "string"},
                    "keys": {"type": "array", "items": {"type": "string"}},
                },
            },
            codes=("404", "409"),
        ),
    },
    "api.legacy_nodes_list": {
        "get": _op(
            "Original Clockwork: list nodes",
            "original API",
            _ok({"type": "array", "items": _ref("Node")}),
            [_param("cluster_name")],
        ),
    },
    "api.legacy_nodes_one": {
        "get": _op(
            "Original Clockwork: one node ({} if none)",
            "original API",
            _ok({"type": "object"}),
            [_param("name", required=True), _param("cluster_name")],
        ),
    },
    "api.openapi_json": {
        "get": _op("This document", "reference", _ok({"type": "object"}), public=True),
    },
    "api.docs": {
        "get": _op(
            "The API reference page",
            "reference",
            {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            public=True,
        ),
    },
    "submissions_api.create_submission": {
        "post": _op(
            "Submit a job (201: sent to Slurm; 202: accepted, sent when the cluster is back)",
            "submissions",
            _ok(_ref("Submission"), "Sent to Slurm"),
            body=TASK_BODY,
            codes=("409", "413"),
            ok_code="201",
            more_ok={"202": _ok(_ref("Submission"), "Accepted, pending")},
        ),
    },
    "submissions_api.list_submissions": {
        "get": _op(
            "Your submissions, newest first",
            "submissions",
            _ok(_ref("SubmissionPage")),
            [
                _list("state", "submission states"),
                _param("cluster", description="cluster name"),
                PAGE,
                _param(
                    "per_page",
                    schema={"type": "integer", "minimum": 1, "maximum": MAX_SUBMISSIONS_PER_PAGE},
                ),
            ],
        ),
    },
    "submissions_api.get_submission": {
        "get": _op(
            "One submission, its state refreshed",
            "submissions",
            _ok(_ref("Submission")),
            [UUID],
            codes=("404",),
        ),
    },
    "submissions_api.cancel_submission": {
        "post": _op(
            "Cancel one of your submissions",
            "submissions",
            _ok(_ref("Submission")),
            [UUID],
            codes=("404", "409"),
        ),
    },
    "submissions_api.monitor": {
        "post": _op(
            "Follow a job submitted outside Clockwork (notifications on its end)",
            "submissions",
            _ok(_ref("Submission"), "Followed"),
            body={
                "type": "object",
                "required": ["cluster", "job_id"],
                "properties": {
                    "cluster": {"type": "string"},
                    "job_id": {"type": "integer", "minimum": 0},
                    "uuid": {"type": "string"},
                    "notification": {"type": "object"},
                },
            },
            codes=("404", "409", "413"),
            ok_code="201",
        ),
    },
    "submissions_api.list_files": {
        "get": _op(
            "The output files of one of your submissions",
            "submissions",
            _ok({"type": "object"}),
            [UUID],
            codes=("404", "503"),
        ),
    },
    "submissions_api.read_file": {
        "get": _op(
            "One output file (Range requests, or the last bytes with tail)",
            "submissions",
            {
                "description": "The file's bytes",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
            [
                UUID,
                _param("path", "path", description="stdout, stderr, or a path in its dirs"),
                _param("tail", schema={"type": "integer", "minimum": 1}),
            ],
            codes=("404", "416", "503"),
            more_ok={"206": {"description": "Part of the file (Range)"}},
        ),
    },
    "auth_api.list_tokens": {
        "get": _op("Your API tokens (never their values)", "account", _ok({"type": "object"})),
    },
    "auth_api.create_token": {
        "post": _op(
            "Create an API token (its value is shown once)",
            "account",
            _ok({"type": "object"}, "Created"),
            body={
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "expires_days": {"type": ["integer", "null"], "minimum": 1},
                },
            },
            ok_code="201",
        ),
    },
    "auth_api.revoke_token": {
        "delete": _op(
            "Revoke one of your API tokens",
            "account",
            {"description": "Revoked"},
            [_param("token_id", "path")],
            codes=("404",),
            ok_code="204",
        ),
    },
}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Job": {
        "type": "object",
        "description": "slurm: the job as Slurm reports it (PySlurm names); cw: Clockwork's",
        "properties": {
            "slurm": {"type": "object"},
            "cw": {"type": "object"},
            "user_props": {"type": "object"},
        },
    },
    "JobPage": _page("Job"),
    "Node": {
        "type": "object",
        "properties": {"slurm": {"type": "object"}, "cw": {"type": "object"}},
    },
    "NodePage": _page("Node"),
    "Props": PROPS_BODY,
    "Submission": {
        "type": "object",
        "properties": {
            "uuid": {"type": "string"},
            "state": {"type": "string"},
            "cluster": {"type": ["string", "null"]},
            "job_id": {"type": ["integer", "null"]},
        },
    },
    "SubmissionPage": {
        "type": "object",
        "required": ["items", "page", "per_page", "has_more"],
        "properties": {
            "items": {"type": "array", "items": _ref("Submission")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "has_more": {"type": "boolean"},
        },
    },
    "Cluster": {"type": "object"},
    "Gpu": {"type": "object"},
    "Me": {"type": "object"},
    "Usage": {
        "type": "object",
        "properties": {
            "group_by": {"type": "string"},
            "start": {"type": "string"},
            "end": {"type": "string"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "cpu_hours": {"type": "number"},
                        "gpu_hours": {"type": "number"},
                        "jobs": {"type": "integer"},
                    },
                },
            },
        },
    },
}

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def openapi_path(rule: str) -> str:
    """``/api/v1/jobs/<cluster>/<int:job_id>`` -> ``/jobs/{cluster}/{job_id}``."""
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule[len(API_PREFIX) :])


def _generic(rule: Any, view: Any, method: str) -> dict[str, Any]:
    doc = (view.__doc__ or "").strip().splitlines()
    params = []
    for match in _CONVERTER.finditer(rule.rule):
        schema = {"type": "integer"} if match.group("conv") == "int" else {"type": "string"}
        params.append(_param(match.group("name"), "path", schema))
    return _op(doc[0] if doc else rule.endpoint, rule.endpoint.split(".")[0], _ok({}), params)


def _with_routing_errors(responses: dict[str, Any], has_path_params: bool) -> dict[str, Any]:
    """``responses`` plus the answers that come before any view runs.

    414: a URI past ``errors.MAX_URI_BYTES`` (the app's check, and gunicorn's
    own for a longer request line); 404: a path parameter that matches no
    route (one holding a ``/``, or an empty one), whatever the operation.
    """
    out = dict(responses)
    if has_path_params:
        out.setdefault("404", _ERR)
    out.setdefault("414", _ERR)
    return out


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``/api/v1`` route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue
        view = app.view_functions.get(rule.endpoint)
        written = OPERATIONS.get(rule.endpoint) or getattr(view, "cw_openapi", None) or {}
        item = paths.setdefault(openapi_path(rule.rule), {})
        for method in sorted(m.lower() for m in (rule.methods or ()) if m.lower() in METHODS):
            op = written.get(method) or _generic(rule, view, method)
            item[method] = {
                **op,
                "responses": _with_routing_errors(op["responses"], "{" in openapi_path(rule.rule)),
                "operationId": f"{rule.endpoint}.{method}",
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clockwork REST API",
            "version": "1",
            "description": (
                "Jobs, nodes and clusters of the Slurm clusters Clockwork follows. "
                "Authenticate with 'Authorization: Bearer <token>' (create tokens on "
                "your settings page or with 'flask tokens create'); HTTP Basic "
                "'<email>:<token>' works too. Every error is "
                '{"error": {"code", "message"}}; dates are ISO 8601 UTC. A URI longer '
                f"than {MAX_URI_BYTES} bytes answers 414."
            ),
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
            "schemas": SCHEMAS,
        },
    }
