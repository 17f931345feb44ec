"""The client against the REAL web app on loopback, over the embedded database.

No mocked HTTP: ``live_server`` (test_common/webapp.py) serves ``create_app``
with werkzeug in a thread, on a database holding a small generated data set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import clockwork_tools as cw
from test_common.webapp import ADMIN, STAFF, STUDENT, LiveServer, live_server  # noqa: F401

NO_FILE = Path("/nonexistent/clockwork.toml")


def _client(server: LiveServer, email: str, **kwargs: Any) -> cw.Client:
    return cw.Client(server.url, server.token(email), env={}, config_file=NO_FILE, **kwargs)


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:  # noqa: F811
    return live_server


@pytest.fixture
def student(server: LiveServer) -> Any:
    with _client(server, STUDENT) as client:
        yield client


@pytest.fixture
def admin(server: LiveServer) -> Any:
    with _client(server, ADMIN) as client:
        yield client


def _own_job(server: LiveServer, email: str = STUDENT) -> dict[str, Any]:
    doc = server.db.jobs.find_one({"cw.user": email}, sort=[("slurm.job_id", 1)])
    assert doc is not None, f"the data set has no job of {email}"
    return doc


# --------------------------------------------------------------------------- reading


def test_me_and_token_check(student: cw.Client) -> None:
    me = student.me()
    assert isinstance(me, cw.User)
    assert me.email == STUDENT and "user" in me.roles
    assert me.cluster_accounts and me.raw["email"] == STUDENT
    assert student.token_check().email == STUDENT


def test_jobs_page_and_filters(server: LiveServer, student: cw.Client) -> None:
    page = student.jobs(per_page=5)
    assert isinstance(page, cw.Page) and len(page) <= 5
    assert page.total == server.db.jobs.count_documents({"cw.user": STUDENT})
    assert all(isinstance(j, cw.Job) and j.user == STUDENT for j in page)
    assert page.next is not None and "page=2" in page.next
    job = page[0]
    assert isinstance(job.submit_time, datetime) and job.submit_time.tzinfo is not None

    running = student.jobs(state="RUNNING", per_page=1000)
    assert all(j.job_state in ("RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING",
               "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED") for j in running)  # fmt: skip
    one = _own_job(server)
    by_id = student.jobs(job_id=[one["slurm"]["job_id"]], cluster=one["slurm"]["cluster_name"])
    assert [j.job_id for j in by_id] == [one["slurm"]["job_id"]]
    after = datetime.now(UTC) - timedelta(days=3)
    recent = student.jobs(submitted_after=after, sort="job_id", order="asc", per_page=1000)
    ids = [j.job_id for j in recent]
    assert ids == sorted(ids)
    assert all(j.submit_time >= after for j in recent)


def test_iter_jobs_walks_every_page(server: LiveServer, admin: cw.Client) -> None:
    total = server.db.jobs.estimated_document_count()
    jobs = list(admin.iter_jobs(per_page=150, sort="job_id", order="asc"))
    assert len(jobs) == total and total > 300  # 4 pages
    keys = {(j.cluster_name, j.job_id) for j in jobs}
    assert len(keys) == total


def test_one_job_with_props(server: LiveServer, student: cw.Client) -> None:
    doc = _own_job(server)
    cluster, job_id = doc["slurm"]["cluster_name"], doc["slurm"]["job_id"]
    job = student.job(cluster, job_id)
    assert (job.cluster_name, job.job_id, job.name) == (cluster, job_id, doc["slurm"]["name"])
    assert job.ref == cw.JobRef(cluster, job_id)
    assert student.job(*job.ref).job_id == job_id

    assert student.job_props(cluster, job_id) == {}
    assert student.set_job_props(cluster, job_id, {"lr": "0.1", "note": "x"}) == {
        "lr": "0.1",
        "note": "x",
    }
    assert student.set_job_props(cluster, job_id, {"seed": 3}) == {
        "lr": "0.1",
        "note": "x",
        "seed": 3,
    }
    assert student.job(cluster, job_id).props == {"lr": "0.1", "note": "x", "seed": 3}
    assert [j.job_id for j in student.jobs(prop_name="lr", prop_value="0.1")] == [job_id]
    assert student.delete_job_props(cluster, job_id, "note") == {"lr": "0.1", "seed": 3}
    assert student.delete_job_props(cluster, job_id, ["lr"]) == {"seed": 3}
    assert student.delete_job_props(cluster, job_id) == {}


def test_current_job_from_slurm_environment(
    server: LiveServer, student: cw.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _own_job(server)
    monkeypatch.setenv("SLURM_JOB_ID", str(doc["slurm"]["job_id"]))
    monkeypatch.setenv("SLURM_CLUSTER_NAME", doc["slurm"]["cluster_name"])
    ref = student.current_job()
    assert student.job(*ref).job_id == doc["slurm"]["job_id"]
    assert student.set_job_props(*ref, {"from": "inside"}) == {"from": "inside"}


def test_nodes(server: LiveServer, admin: cw.Client) -> None:
    page = admin.nodes(per_page=10)
    assert len(page) == min(10, page.total or 0) and all(isinstance(n, cw.Node) for n in page)
    every = list(admin.iter_nodes(per_page=25))
    assert len(every) == page.total == server.db.nodes.estimated_document_count()
    first = every[0]
    node = admin.node(first.cluster_name, first.name)
    assert (node.cluster_name, node.name, node.state) == (
        first.cluster_name,
        first.name,
        first.state,
    )
    assert all(
        n.cluster_name == first.cluster_name for n in admin.iter_nodes(cluster=first.cluster_name)
    )


def test_gpus_clusters_usage(server: LiveServer, student: cw.Client, admin: cw.Client) -> None:
    gpus = student.gpus()
    assert gpus and all(isinstance(g, cw.Gpu) and g.name for g in gpus)
    clusters = student.clusters()
    names = {c.name for c in clusters}
    assert names and names <= set(server.config.clusters) | set(server.dataset["clusters"])
    assert all(isinstance(c, cw.Cluster) for c in clusters)
    fresh = [c for c in clusters if c.last_success is not None]
    assert fresh and all(c.last_success.tzinfo is not None for c in fresh)

    report = admin.usage(group_by="cluster")
    assert isinstance(report, cw.Usage) and report.group_by == "cluster"
    assert report.rows and {"key", "cpu_hours", "gpu_hours"} <= set(report.rows[0])
    assert report.end - report.start == timedelta(days=30)
    mine = student.usage(datetime.now(UTC) - timedelta(days=90))
    assert all(row["key"] == STUDENT for row in mine.rows)


# --------------------------------------------------------------------------- errors


def test_bad_token_is_authentication_error(server: LiveServer) -> None:
    bad = cw.Client(server.url, "cw_not-a-real-token", env={}, config_file=NO_FILE)
    with bad as client, pytest.raises(cw.AuthenticationError) as info:
        client.me()
    assert info.value.status_code == 401
    assert "token" in info.value.message


def test_no_token_says_how_to_configure_one(server: LiveServer) -> None:
    anonymous = cw.Client(server.url, env={}, config_file=NO_FILE)
    with anonymous as client, pytest.raises(cw.AuthenticationError, match="CLOCKWORK_TOKEN"):
        client.jobs()


def test_disabled_user_is_permission_denied(server: LiveServer) -> None:
    server.db.users.insert_one(
        {"email": "gone@example.org", "display_name": "Gone", "status": "disabled",
         "roles": ["user"], "cluster_accounts": {}, "account_keys": [], "settings": {}}
    )  # fmt: skip
    with _client(server, "gone@example.org") as client, pytest.raises(cw.PermissionDeniedError):
        client.me()


def test_not_found(student: cw.Client, server: LiveServer) -> None:
    with pytest.raises(cw.NotFoundError) as info:
        student.job("nosuchcluster", 1)
    assert info.value.status_code == 404 and info.value.code == "not_found"
    other = server.db.jobs.find_one({"cw.user": {"$nin": [STUDENT, None]}})
    with pytest.raises(cw.NotFoundError):  # another user's job is invisible
        student.job(other["slurm"]["cluster_name"], other["slurm"]["job_id"])


def test_bad_request_names_the_parameter(student: cw.Client) -> None:
    with pytest.raises(cw.BadRequestError) as info:
        student.jobs(state="NOT_A_STATE")
    assert info.value.status_code == 400 and "state" in info.value.message
    with pytest.raises(cw.BadRequestError, match="per_page"):
        student.jobs(per_page=100000)
    with pytest.raises(cw.BadRequestError, match="sort"):
        student.jobs(sort="password")


def test_staff_may_not_write_props(server: LiveServer) -> None:
    doc = _own_job(server)
    with _client(server, STAFF) as staff:
        assert staff.job(doc["slurm"]["cluster_name"], doc["slurm"]["job_id"]).job_id
        with pytest.raises((cw.PermissionDeniedError, cw.NotFoundError)):
            staff.set_job_props(doc["slurm"]["cluster_name"], doc["slurm"]["job_id"], {"a": 1})


# --------------------------------------------------------------------------- original client


def _compat(server: LiveServer, email: str = STUDENT) -> cw.ClockworkToolsClient:
    host, port = server.url.removeprefix("http://").split(":")
    return cw.ClockworkToolsClient(email, server.token(email), host=host, port=int(port))


def test_original_client_names_work(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOBID", raising=False)
    client = _compat(server)
    doc = _own_job(server)
    cluster, job_id = doc["slurm"]["cluster_name"], doc["slurm"]["job_id"]

    jobs = client.jobs_list()
    assert isinstance(jobs, list) and jobs and isinstance(jobs[0], dict)
    assert len(jobs) == server.db.jobs.count_documents({"cw.user": STUDENT})
    assert {j["slurm"]["cluster_name"] for j in client.jobs_list(cluster_name=cluster)} == {cluster}
    assert [j["slurm"]["job_id"] for j in client.jobs_list(job_ids=[job_id])] == [job_id]

    one = client.jobs_one(str(job_id), cluster)
    assert one["slurm"]["job_id"] == job_id
    assert client.jobs_one("999999999", cluster) == {}

    assert client.get_user_props(str(job_id), cluster) == {}
    assert client.set_user_props(str(job_id), cluster, {"a": "1", "b": "2"}) == {"a": "1", "b": "2"}
    client.delete_user_props(str(job_id), cluster, ["a"])
    assert client.get_user_props(str(job_id), cluster) == {"b": "2"}
    client.delete_user_props(str(job_id), cluster, "b")
    assert client.get_user_props(str(job_id), cluster) == {}

    nodes = client.nodes_list()
    assert isinstance(nodes, list) and nodes
    name = nodes[0]["slurm"]["name"]
    assert client.nodes_one(name)["slurm"]["name"] == name
    assert client.nodes_one(name, nodes[0]["slurm"]["cluster_name"])["slurm"]["name"] == name
    assert client.nodes_list(cluster_name=nodes[0]["slurm"]["cluster_name"])


def test_original_client_inside_a_slurm_job(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _own_job(server)
    monkeypatch.setenv("SLURM_JOB_ID", str(doc["slurm"]["job_id"]))
    monkeypatch.setenv("SLURM_CLUSTER_NAME", doc["slurm"]["cluster_name"])
    client = _compat(server)
    assert client.jobs_one()["slurm"]["job_id"] == doc["slurm"]["job_id"]
    assert client.set_user_props(updates={"here": "yes"}) == {"here": "yes"}
    assert client.get_user_props() == {"here": "yes"}


def test_original_client_environment_and_errors(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOCKWORK_API_KEY", raising=False)
    monkeypatch.delenv("CLOCKWORK_EMAIL", raising=False)
    with pytest.raises(cw.ConfigurationError, match="clockwork_api_key"):
        cw.ClockworkToolsClient()
    host, port = server.url.removeprefix("http://").split(":")
    monkeypatch.setenv("CLOCKWORK_EMAIL", STUDENT)
    monkeypatch.setenv("CLOCKWORK_API_KEY", server.token(STUDENT))
    assert cw.ClockworkToolsClient(host=host, port=int(port)).jobs_list()
    monkeypatch.setenv("CLOCKWORK_API_KEY", "cw_wrong")
    with pytest.raises(Exception) as info:  # the original raised a bare Exception
        cw.ClockworkToolsClient(host=host, port=int(port)).jobs_list()
    assert isinstance(info.value, cw.AuthenticationError)
    # email + token of someone else: refused
    monkeypatch.setenv("CLOCKWORK_API_KEY", server.token(ADMIN))
    with pytest.raises(cw.AuthenticationError):
        cw.ClockworkToolsClient(host=host, port=int(port)).jobs_list()


def test_environment_configuration(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOCKWORK_URL", server.url)
    monkeypatch.setenv("CLOCKWORK_TOKEN", server.token(STUDENT))
    monkeypatch.setenv("CLOCKWORK_CONFIG_FILE", str(NO_FILE))
    with cw.Client() as client:
        assert client.me().email == STUDENT
    monkeypatch.delenv("CLOCKWORK_TOKEN")
    monkeypatch.setenv("CLOCKWORK_EMAIL", STUDENT)
    monkeypatch.setenv("CLOCKWORK_API_KEY", server.token(STUDENT))
    with cw.Client() as client:  # the original's variables: HTTP Basic
        assert client.me().email == STUDENT


def test_tokens_create_use_revoke(server: LiveServer, student: cw.Client) -> None:
    new = student.create_token("from-tests", expires_days=1)
    assert isinstance(new, cw.Token) and new.token.startswith("cw_") and new.expires_at
    assert new.id in {t.id for t in student.tokens()}
    assert all(t.token is None for t in student.tokens())  # never shown again
    with cw.Client(server.url, new.token, env={}, config_file=NO_FILE) as fresh:
        assert fresh.me().email == STUDENT
        student.revoke_token(new.id)
        with pytest.raises(cw.AuthenticationError):
            fresh.me()
    with pytest.raises(cw.NotFoundError):
        student.revoke_token(new.id)
    with pytest.raises(cw.BadRequestError, match="name"):
        student.create_token("")
