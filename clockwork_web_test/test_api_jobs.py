"""``/api/v1/jobs``: listing, visibility, one job, props, hostile input, original paths."""

from __future__ import annotations

import base64
import json
from typing import Any

import api_fixtures
import pytest
from api_fixtures import ADMIN, ALICE, BOB, DISABLED, STAFF, Api

# the shared fixtures, under the names the tests ask for
api = api_fixtures.api
api_config = api_fixtures.api_config


def ids(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(j["slurm"]["cluster_name"], j["slurm"]["job_id"]) for j in items]


def test_anonymous_and_disabled_are_refused(api: Api) -> None:
    response = api.client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert api.get(DISABLED, "/api/v1/jobs").status_code in (401, 403)


def test_user_lists_own_jobs_newest_first_with_pages(api: Api) -> None:
    response = api.get(ALICE, "/api/v1/jobs?per_page=12")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 30 and body["page"] == 1 and body["per_page"] == 12
    assert {j["cw"]["user"] for j in body["items"]} == {ALICE}
    submits = [j["slurm"]["submit_time"] for j in body["items"]]
    assert submits == sorted(submits, reverse=True)
    assert submits[0].endswith("Z")  # ISO 8601 UTC
    assert "last_scrape_id" not in body["items"][0]["cw"]
    seen = ids(body["items"])
    while body["next"]:
        body = api.get(ALICE, body["next"]).get_json()
        seen += ids(body["items"])
    assert len(seen) == len(set(seen)) == 30


def test_user_never_sees_another_users_jobs(api: Api) -> None:
    body = api.get(BOB, "/api/v1/jobs?per_page=1000").get_json()
    assert body["total"] == 20 and {j["cw"]["user"] for j in body["items"]} == {BOB}
    assert api.get(BOB, f"/api/v1/jobs?user={ALICE}").get_json()["total"] == 0
    assert api.get(BOB, "/api/v1/jobs?cluster=other").get_json()["total"] == 0
    assert api.get(BOB, "/api/v1/jobs/testcluster/100").status_code == 404
    assert api.get(BOB, "/api/v1/jobs/testcluster/100/props").status_code == 404


def test_staff_and_admin_see_all_jobs(api: Api) -> None:
    for who in (STAFF, ADMIN):
        body = api.get(who, "/api/v1/jobs?per_page=5").get_json()
        assert body["total"] == 55
        assert api.get(who, "/api/v1/jobs/testcluster/100").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cluster=other", 10),
        ("state=RUNNING", 6),
        ("state=FAILED", 13),
        ("state=COMPLETED,PENDING", 11),
        ("job_id=100,101&job_id=102", 6),
        ("array_job_id=9000", 6),
        ("name=EVAL.ALICE", 15),
        ("name=[", 15),
        ("partition=long", 15),
        ("account=rrg-lab", 11),
        ("submitted_after=2024-03-01T05:00:00Z", 20),
        ("submitted_before=1709254800", 2),
        ("user=alice2", 10),
    ],
)
def test_filters(api: Api, query: str, expected: int) -> None:
    response = api.get(ALICE, f"/api/v1/jobs?per_page=1000&{query}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["total"] == len(body["items"]) == expected


def test_job_ids_sort_as_numbers(api: Api) -> None:
    body = api.get(ADMIN, "/api/v1/jobs?sort=job_id&order=asc&per_page=1000").get_json()
    job_ids = [j["slurm"]["job_id"] for j in body["items"]]
    assert job_ids == sorted(job_ids) and job_ids[-1] == 5004


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("user[$ne]=x", "user[$ne]"),
        ("per_page=100000", "per_page"),
        ("page=0", "page"),
        ("submitted_after=yesterday", "submitted_after"),
        ("job_id=abc", "job_id"),
        ("sort=__proto__", "sort"),
        ("state=$gt", "state"),
    ],
)
def test_hostile_query_strings_are_400(api: Api, query: str, param: str) -> None:
    response = api.get(ALICE, f"/api/v1/jobs?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and param in error["message"]


def test_one_job_carries_own_props(api: Api) -> None:
    assert api.get(ALICE, "/api/v1/jobs/testcluster/abc").status_code == 400
    assert api.get(ALICE, "/api/v1/jobs/testcluster/99999").status_code == 404
    job = api.get(ALICE, "/api/v1/jobs/testcluster/100").get_json()
    assert job["slurm"]["job_id"] == 100 and job["user_props"] == {}


def patch(api: Api, who: str, url: str, body: Any) -> Any:
    return api.client.patch(
        url, data=json.dumps(body), headers=api.headers(who), content_type="application/json"
    )


def test_props_merge_delete_and_filter(api: Api) -> None:
    url = "/api/v1/jobs/testcluster/101/props"
    assert patch(api, ALICE, url, {"exp": "lr-0.1", "seed": 3}).get_json() == {
        "exp": "lr-0.1",
        "seed": 3,
    }
    assert patch(api, ALICE, url, {"seed": 4}).get_json() == {"exp": "lr-0.1", "seed": 4}
    assert api.get(ALICE, url).get_json() == {"exp": "lr-0.1", "seed": 4}
    listed = api.get(ALICE, "/api/v1/jobs?prop_name=exp&prop_value=lr-0.1").get_json()
    assert ids(listed["items"]) == [("testcluster", 101)]
    assert api.get(ALICE, "/api/v1/jobs?prop_name=seed&prop_value=4").get_json()["total"] == 1
    assert api.get(ALICE, "/api/v1/jobs?prop_name=seed&prop_value=3").get_json()["total"] == 0
    assert api.get(ALICE, "/api/v1/jobs?prop_name=exp").get_json()["total"] == 1
    # props are per user: bob's filter finds nothing of alice's
    assert api.get(BOB, "/api/v1/jobs?prop_name=exp").get_json()["total"] == 0
    deleted = api.client.delete(url + "?keys=seed", headers=api.headers(ALICE))
    assert deleted.get_json() == {"exp": "lr-0.1"}
    deleted = api.client.delete(url, json={"keys": ["exp"]}, headers=api.headers(ALICE))
    assert deleted.get_json() == {}
    assert api.get(ALICE, "/api/v1/jobs?prop_name=exp").get_json()["total"] == 0


def test_props_only_owner_only_existing_jobs_and_bounded(api: Api) -> None:
    url = "/api/v1/jobs/testcluster/101/props"
    assert patch(api, BOB, url, {"a": 1}).status_code == 404
    assert patch(api, STAFF, url, {"a": 1}).status_code == 403
    assert patch(api, ADMIN, url, {"a": 1}).status_code == 403
    assert patch(api, ALICE, "/api/v1/jobs/testcluster/424242/props", {"a": 1}).status_code == 404
    for bad in ([1, 2], "text", 3, None):
        response = patch(api, ALICE, url, bad)
        assert response.status_code == 400 and "body" in response.get_json()["error"]["message"]
    for bad_key in ("$set", "a.b", "a=b", ""):
        response = patch(api, ALICE, url, {bad_key: 1})
        assert response.status_code == 400
    big = {"blob": "x" * (api.config.web.props_max_bytes + 1)}
    response = patch(api, ALICE, url, big)
    assert response.status_code == 400 and "props" in response.get_json()["error"]["message"]
    assert api.get(ALICE, url).get_json() == {}  # nothing half-written
    broken = api.client.patch(
        url, data="{not json", headers=api.headers(ALICE), content_type="application/json"
    )
    assert broken.status_code == 400


def test_stored_props_document_shape(api: Api) -> None:
    patch(api, ALICE, "/api/v1/jobs/other/105/props", {"k": "v", "n": 1})
    doc = api.db.job_user_props.find_one({"cluster_name": "other", "job_id": 105})
    assert doc["user_email"] == ALICE and doc["props"] == {"k": "v", "n": 1}
    assert set(doc["prop_keys"]) >= {"k=v", "n=1"}


# --------------------------------------------------------------------------- original paths


def basic(email: str, token: str) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{token}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_original_jobs_list_and_one(api: Api) -> None:
    headers = basic(ALICE, api.tokens[ALICE])
    jobs = api.client.get("/api/v1/clusters/jobs/list", headers=headers).get_json()
    assert isinstance(jobs, list) and len(jobs) == 30
    some = api.client.get(
        "/api/v1/clusters/jobs/list?cluster_name=other&job_state=RUNNING&want_count=true",
        headers=headers,
    ).get_json()
    assert some["nbr_total_jobs"] == len(some["jobs"]) == 2
    page = api.client.get(
        "/api/v1/clusters/jobs/list?page_num=2&nbr_items_per_page=10&sort_by=job_id&sort_asc=1",
        headers=headers,
    ).get_json()
    assert len(page) == 10
    one = api.client.get(
        "/api/v1/clusters/jobs/one?job_id=100&cluster_name=other", headers=headers
    ).get_json()
    assert one["slurm"]["cluster_name"] == "other" and one["slurm"]["job_id"] == 100
    assert api.client.get("/api/v1/clusters/jobs/one?job_id=1000", headers=headers).get_json() == {}
    assert api.client.get("/api/v1/clusters/jobs/one", headers=headers).status_code == 400
    hostile = api.client.get("/api/v1/clusters/jobs/list?username[$ne]=x", headers=headers)
    assert hostile.status_code == 400


def test_original_user_props(api: Api) -> None:
    headers = api.headers(ALICE)
    base = "/api/v1/clusters/jobs/user_props"
    assert (
        api.client.get(
            f"{base}/get?job_id=102&cluster_name=testcluster", headers=headers
        ).get_json()
        == {}
    )
    set_json = api.client.put(
        f"{base}/set",
        json={"job_id": 102, "cluster_name": "testcluster", "updates": {"a": "b"}},
        headers=headers,
    )
    assert set_json.get_json() == {"a": "b"}
    set_form = api.client.put(
        f"{base}/set",
        data={"job_id": "102", "cluster_name": "testcluster", "updates": json.dumps({"c": 1})},
        headers=headers,
    )
    assert set_form.get_json() == {"a": "b", "c": 1}
    deleted = api.client.put(
        f"{base}/delete",
        data={"job_id": "102", "cluster_name": "testcluster", "keys": json.dumps(["a"])},
        headers=headers,
    )
    assert deleted.status_code == 200 and deleted.get_json() == ""
    assert api.client.get(
        f"{base}/get?job_id=102&cluster_name=testcluster", headers=headers
    ).get_json() == {"c": 1}
    # someone else's job: nothing to read, nothing to write
    assert (
        api.client.get(
            f"{base}/get?job_id=1000&cluster_name=testcluster", headers=headers
        ).get_json()
        == {}
    )
    refused = api.client.put(
        f"{base}/set",
        json={"job_id": 1000, "cluster_name": "testcluster", "updates": {"a": 1}},
        headers=headers,
    )
    assert refused.status_code == 404
