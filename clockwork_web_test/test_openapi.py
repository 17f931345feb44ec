"""The OpenAPI document matches the routes; schemathesis finds no 5xx nor undocumented status."""

from __future__ import annotations

import re
from typing import Any

import api_fixtures
import pytest
import schemathesis
from api_fixtures import ADMIN, ALICE, Api
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from clockwork_web.openapi import API_PREFIX, METHODS, OPERATIONS, build_document, openapi_path

# the shared fixtures, under the names the tests ask for
api = api_fixtures.api
api_config = api_fixtures.api_config


def _rules(app: Any) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX + "/"):
            for method in rule.methods or ():
                if method.lower() in METHODS:
                    found.add((openapi_path(rule.rule), method.lower()))
    return found


def test_every_route_is_documented_and_vice_versa(api: Api) -> None:
    doc = api.client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, m) for path, item in doc["paths"].items() for m in item}
    assert documented == _rules(api.app)
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for op in item.values():
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == names, (path, op["operationId"])


def test_every_operation_of_this_package_is_written_out(api: Api) -> None:
    endpoints = {r.endpoint for r in api.app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert endpoints <= set(OPERATIONS), sorted(endpoints - set(OPERATIONS))
    assert {e for e in OPERATIONS if e.startswith("api.")} <= endpoints


def test_errors_share_one_schema(api: Api) -> None:
    doc = build_document(api.app)
    for path, item in doc["paths"].items():
        for op in item.values():
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert response == {"$ref": "#/components/responses/Error"}, path


#: Examples per operation and generation mode: ~29 operations x 2 modes x this
#: stays around 15 s on the 2-core machine.
EXAMPLES = 8
#: What every answer must satisfy: no 5xx, and a status the document lists.
CHECKS = [not_a_server_error, status_code_conformance]


#: Requests that once answered 500 (test_hostile_input.py has the pages' and
#: slurm-proxy's), sent through schemathesis with the same checks as above.
HOSTILE_CASES: dict[str, list[dict[str, Any]]] = {
    "GET /jobs": [
        {"query": {param: date}}
        for param in ("submitted_before", "submitted_after")
        for date in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-10:00")
    ]
    + [{"query": {"page": "9" * 20}}, {"query": {"name": "x" * 5000}}],
    "GET /stats/usage": [
        {"query": {"start": "0001-01-01T00:00:00+01:00", "end": "2024-01-01"}},
        {"query": {"start": "2024-01-01", "end": "9999-12-31T23:59:59-10:00"}},
    ],
    "GET /submissions": [{"query": {"page": "9" * 20}}, {"query": {"per_page": "9" * 20}}],
    "GET /jobs/{cluster}/{job_id}": [
        {"path_parameters": {"cluster": "testcluster", "job_id": "9" * 20}},
        {"path_parameters": {"cluster": "testcluster", "job_id": "424242"}},
    ],
    "GET /submissions/{uuid}/files/{path}": [
        {"path_parameters": {"uuid": "x", "path": "stdout"}, "query": {"tail": "9" * 20}},
    ],
}


def _check(case: Any, label: str, headers: dict[str, str], failures: list[str]) -> None:
    """Send one case; what the checks find goes to ``failures``."""
    response = case.call(headers=headers)
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as exc:
        body = "" if isinstance(case.body, NotSet) else f" body={case.body!r}"
        failures.append(
            (
                f"{case.operation.label} ({label}): {response.status_code} for "
                f"path={case.path_parameters} query={case.query}{body}: "
                + "; ".join(failure.title for failure in exc.exceptions)
            )[:500]
        )


def _fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], failures: list[str]
) -> None:
    """Up to EXAMPLES generated requests to one operation; failed checks go to ``failures``."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _check(case, mode.value, headers, failures)

    try:
        run()
    except Unsatisfiable:
        # nothing to make invalid: an operation without parameters nor body
        assert mode == GenerationMode.NEGATIVE, operation.label


def test_schemathesis_finds_no_server_error_nor_undocumented_status(api: Api) -> None:
    """Every operation of the document, valid and invalid requests (negative testing)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    headers = api.headers(ALICE)
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}"
        for path, item in build_document(api.app)["paths"].items()
        for method in item
    }
    # all of them but the document itself, which schemathesis leaves out
    assert {op.label for op in operations} == documented - {"GET /openapi.json"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, headers, failures)
    for label, cases in HOSTILE_CASES.items():
        operation = schema[label.split()[1]][label.split()[0]]
        for case in cases:
            _check(operation.Case(**case), "hostile", headers, failures)
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("who", [ALICE, ADMIN])
def test_documented_list_parameters_work(api: Api, who: str) -> None:
    doc = build_document(api.app)
    names = [p["name"] for p in doc["paths"]["/jobs"]["get"]["parameters"]]
    samples = {
        "submitted_after": "2024-01-01",
        "submitted_before": "2025-01-01",
        "page": "1",
        "per_page": "10",
        "job_id": "100",
        "array_job_id": "9000",
        "sort": "job_id",
        "order": "asc",
        "state": "RUNNING",
        "prop_value": "v",
    }
    for name in names:
        query = f"{name}={samples.get(name, 'x')}"
        if name == "prop_value":
            query += "&prop_name=k"
        response = api.get(who, f"/api/v1/jobs?{query}")
        assert response.status_code == 200, (name, response.get_json())
