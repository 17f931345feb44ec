"""``/api/v1`` nodes, clusters, GPUs, me, usage statistics, and ``/metrics``."""

from __future__ import annotations

from datetime import UTC, datetime

import api_fixtures
from api_fixtures import ADMIN, ALICE, BOB, STAFF, Api
from pydantic import SecretStr

from clockwork_web.stats.service import accumulate_usage

# the shared fixtures, under the names the tests ask for
api = api_fixtures.api
api_config = api_fixtures.api_config


def test_nodes_are_filtered_by_the_users_clusters(api: Api) -> None:
    bob = api.get(BOB, "/api/v1/nodes").get_json()
    assert bob["total"] == 5
    assert {n["slurm"]["cluster_name"] for n in bob["items"]} == {"testcluster"}
    assert api.get(ALICE, "/api/v1/nodes").get_json()["total"] == 10
    assert api.get(ADMIN, "/api/v1/nodes?cluster=other&state=idle").get_json()["total"] == 3
    page = api.get(ADMIN, "/api/v1/nodes?per_page=4").get_json()
    assert len(page["items"]) == 4 and page["next"] and page["total"] == 10
    assert api.get(ADMIN, "/api/v1/nodes?name=A003").get_json()["total"] == 2
    assert api.get(BOB, "/api/v1/nodes/other/cn-a001").status_code == 404
    assert api.get(ALICE, "/api/v1/nodes/other/cn-a001").get_json()["slurm"]["cpus"] == 32
    assert api.get(BOB, "/api/v1/nodes?per_page=0").status_code == 400
    assert api.get(BOB, "/api/v1/nodes?state[$ne]=x").status_code == 400


def test_original_node_paths(api: Api) -> None:
    nodes = api.get(BOB, "/api/v1/clusters/nodes/list").get_json()
    assert isinstance(nodes, list) and len(nodes) == 5
    one = api.get(ALICE, "/api/v1/clusters/nodes/one?name=cn-a002&cluster_name=other")
    assert one.get_json()["slurm"]["state"] == "allocated"
    assert api.get(BOB, "/api/v1/clusters/nodes/one?name=nope").get_json() == {}


def test_clusters_show_freshness_and_hide_clusters_without_account(api: Api) -> None:
    bob = api.get(BOB, "/api/v1/clusters").get_json()["items"]
    assert [c["name"] for c in bob] == ["testcluster"]
    assert bob[0]["last_success"] == "2024-03-01T00:00:00Z" and bob[0]["age_s"] > 0
    admin = api.get(ADMIN, "/api/v1/clusters").get_json()["items"]
    assert [c["name"] for c in admin] == ["other", "testcluster"]
    assert admin[0]["last_success"] is None


def test_gpus_and_me(api: Api) -> None:
    assert api.get(BOB, "/api/v1/gpus").get_json()["items"][0]["name"] == "a100"
    me = api.get(ALICE, "/api/v1/me").get_json()
    assert me["email"] == ALICE and me["roles"] == ["user"]
    assert me["clusters"] == ["other", "testcluster"]


def test_usage_per_user_and_cluster(api: Api) -> None:
    url = "/api/v1/stats/usage?start=2024-03-01&end=2024-03-03"
    mine = api.get(ALICE, url + "&group_by=cluster").get_json()
    assert [r["key"] for r in mine["rows"]] == ["testcluster", "other"]
    assert all(r["cpu_hours"] > 0 for r in mine["rows"])
    everyone = api.get(STAFF, url + "&group_by=user").get_json()
    assert {r["key"] for r in everyone["rows"]} >= {ALICE, BOB}
    assert api.get(BOB, url + "&group_by=user").get_json()["rows"][0]["key"] == BOB
    assert api.get(BOB, "/api/v1/stats/usage?start=2024-03-01").status_code == 400
    assert api.get(BOB, url + "&group_by=planet").status_code == 400
    assert api.get(BOB, "/api/v1/stats/usage?start=2024-03-02&end=2024-03-01").status_code == 400


def test_usage_arithmetic_clips_to_the_period() -> None:
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    docs = [
        {  # 2 h inside, 2 CPUs, 1 GPU
            "cw": {"user": "a"},
            "slurm": {
                "start_time": datetime(2024, 1, 1, 10, tzinfo=UTC),
                "end_time": datetime(2024, 1, 1, 12, tzinfo=UTC),
                "num_cpus": 2,
                "num_gpus": 1,
            },
        },
        {  # started the day before: only the 1 h inside counts
            "cw": {"user": "a"},
            "slurm": {
                "start_time": datetime(2023, 12, 31, 20, tzinfo=UTC),
                "end_time": datetime(2024, 1, 1, 1, tzinfo=UTC),
                "num_cpus": 10,
            },
        },
        {  # still running: counts up to now
            "cw": {"user": "b"},
            "slurm": {"start_time": datetime(2024, 1, 1, 23, tzinfo=UTC), "num_cpus": 1},
        },
        {"cw": {"user": "c"}, "slurm": {"start_time": None}},
    ]
    now = datetime(2024, 1, 1, 23, 30, tzinfo=UTC)
    rows = accumulate_usage(docs, group_by="user", start=start, end=end, now=now)
    assert rows == [
        {"key": "a", "cpu_hours": 14.0, "gpu_hours": 2.0, "jobs": 2},
        {"key": "b", "cpu_hours": 0.5, "gpu_hours": 0.0, "jobs": 1},
    ]


def test_metrics_need_the_token_or_an_allowed_address(api: Api) -> None:
    outsider = {"REMOTE_ADDR": "192.0.2.7"}
    refused = api.client.get("/metrics", environ_base=outsider)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    allowed = api.client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert allowed.status_code == 200 and b"# TYPE" in allowed.data
    web = api.config.web.model_copy(update={"metrics_token": SecretStr("s3cret-token")})
    api.app.config["CLOCKWORK"] = api.config.model_copy(update={"web": web})
    good = api.client.get(
        "/metrics", environ_base=outsider, headers={"Authorization": "Bearer s3cret-token"}
    )
    assert good.status_code == 200
    bad = api.client.get(
        "/metrics", environ_base=outsider, headers={"Authorization": "Bearer wrong"}
    )
    assert bad.status_code == 403


def test_reference_page_is_public_and_script_free(api: Api) -> None:
    page = api.client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<script" not in text and "GET /jobs" in text and "/clusters/jobs/list" in text
