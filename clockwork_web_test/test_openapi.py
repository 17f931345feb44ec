"""The OpenAPI document matches the routes, and schemathesis finds no server error."""

from __future__ import annotations

import re
from typing import Any

import api_fixtures
import pytest
import schemathesis
from api_fixtures import ADMIN, ALICE, Api
from hypothesis import HealthCheck, given, settings

from clockwork_web.openapi import API_PREFIX, METHODS, OPERATIONS, build_document, openapi_path

#: Operations schemathesis exercises: this package's (others' routes may start jobs).
FUZZED_PREFIX = "api."


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


def _fuzz(operation: Any, headers: dict[str, str], failures: list[str]) -> None:
    """Up to 20 generated requests to one operation; 5xx answers go to ``failures``."""

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(
                f"{operation.label}: {response.status_code} for "
                f"{case.path_parameters} {case.query} {case.body!r}"[:500]
            )

    run()


def test_schemathesis_finds_no_server_error(api: Api) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    headers = api.headers(ALICE)
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    fuzzed = [
        op
        for op in operations
        if op.definition.raw.get("operationId", "").startswith(FUZZED_PREFIX)
    ]
    assert len(fuzzed) >= 15
    for operation in fuzzed:
        _fuzz(operation, headers, failures)
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
