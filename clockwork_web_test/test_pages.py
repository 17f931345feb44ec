"""The server-rendered pages, through Flask's test client on a real database.

A small generated data set (test_common.datagen) on four clusters; the demo
logins admin@, staff@ and student@example.org. Sessions are opened by writing
the session cookie (the login itself is tested in test_auth_login and, through
the real provider in a browser, in test_browser).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from clockwork_core.config import ClusterConfig, Config
from clockwork_core.schema import STATE_BUCKETS, Job, job_document
from clockwork_web import create_app
from clockwork_web.pages.dashboard import usage_per_day
from clockwork_web.pages.gpus import allocation_now, allocation_series
from clockwork_web.pages.jobs import _csv_cell, fold_arrays
from clockwork_web.pages.prefs import DEFAULT_JOB_COLUMNS, parse_prefs_form, prefs_of

ADMIN = "admin@example.org"
STAFF = "staff@example.org"
STUDENT = "student@example.org"
CLUSTERS = ("testcluster", "mila", "narval", "beluga")
XSS = "<script>alert(1)</script>"


@pytest.fixture
def pages_config(config: Config) -> Config:
    return config.model_copy(update={"clusters": {c: ClusterConfig() for c in CLUSTERS}})


@pytest.fixture
def app(pages_config: Config, db: Database[Any]) -> Flask:
    from test_common.datagen import load_dataset

    load_dataset(db, n_jobs=400, n_users=12, seed=11, clusters=list(CLUSTERS))
    return create_app(pages_config, {"TESTING": True})


def client_as(app: Flask, email: str | None, **headers: str) -> FlaskClient:
    client = app.test_client()
    if headers:
        client.environ_base.update(
            {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        )
    if email:
        with client.session_transaction() as session:
            session["user_email"] = email
    return client


def csrf_of(client: FlaskClient) -> str:
    page = client.get("/settings").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def a_job(db: Database[Any], **query: Any) -> dict[str, Any]:
    doc = db.jobs.find_one(query)
    assert doc is not None, query
    return doc["slurm"]


def page_urls(db: Database[Any]) -> list[str]:
    job = a_job(db, **{"cw.user": STUDENT, "slurm.cluster_name": "mila"})
    node = db.nodes.find_one({"slurm.cluster_name": "mila"})["slurm"]
    return [
        "/",
        "/dashboard/live",
        "/jobs",
        "/jobs?fold=1&columns=job_id,name,state,cpus,mem,exit_code,partition,account",
        "/jobs?state=RUNNING&cluster=mila&sort=name&order=asc",
        "/jobs?state=FAILED&sort=end_time",
        f"/jobs/{job['cluster_name']}/{job['job_id']}",
        "/nodes",
        "/nodes?cluster=mila&state=idle",
        f"/nodes/mila/{node['name']}",
        "/gpus",
        "/clusters",
        "/clusters/mila",
        f"/users/{STUDENT}",
        "/settings",
    ]


ADMIN_URLS = ["/admin/users", f"/admin/users/{STUDENT}", "/admin/audit", "/admin/users?q=user0"]


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("email", [STUDENT, STAFF, ADMIN])
def test_every_page_renders_for_every_role(app: Flask, db: Database[Any], email: str) -> None:
    client = client_as(app, email)
    for url in page_urls(db):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.get_data(as_text=True)[:500])
        assert answer.headers["Content-Type"].startswith("text/html")
    for url in ADMIN_URLS:
        status = client.get(url).status_code
        assert status == (403 if email == STUDENT else 200), url


def test_anonymous_visitors_are_sent_to_login(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, None)
    for url in page_urls(db) + ADMIN_URLS:
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert answer.headers["Location"].startswith("/login?next=")
    login = client.get("/login")
    assert login.status_code == 200 and b'id="login-oidc"' in login.data


def test_layout_landmarks_and_no_inline_script(app: Flask) -> None:
    page = client_as(app, STUDENT).get("/jobs")
    html = page.get_data(as_text=True)
    for landmark in ("<header", "<nav", '<main id="main"', "<footer", 'class="skip-link"'):
        assert landmark in html
    assert re.search(r"<html lang=\"en\" data-theme=\"system\">", html)
    # every script is a file of the app; no inline handlers
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'aria-sort="descending"' in html  # the default sort column says so


def test_bad_filters_say_what_is_wrong(app: Flask) -> None:
    client = client_as(app, STUDENT)
    for query, param in (
        ("state=SLEEPING", "state"),
        ("job_id=abc", "job_id"),
        ("sort=password", "sort"),
        ("page=0", "page"),
        ("submitted_after=yesterday", "submitted_after"),
        ("nonsense=1", "nonsense"),
    ):
        answer = client.get(f"/jobs?{query}")
        assert answer.status_code == 400, query
        text = answer.get_data(as_text=True)
        assert 'id="filter-error"' in text and param in text, query
        assert "Traceback" not in text
    assert client.get("/nodes?page=x").status_code == 400
    assert client.get("/jobs/export.xml").status_code == 400
    assert client.get("/jobs/mila/99999999999").status_code == 404


# --------------------------------------------------------------------------- visibility


def test_a_user_never_sees_anothers_job(app: Flask, db: Database[Any]) -> None:
    other = a_job(db, **{"cw.user": {"$nin": [STUDENT, None]}, "slurm.cluster_name": "mila"})
    client = client_as(app, STUDENT)
    answer = client.get(f"/jobs/{other['cluster_name']}/{other['job_id']}")
    assert answer.status_code == 404
    owner = db.jobs.find_one({"slurm.job_id": other["job_id"]})["cw"]["user"]
    for url in ("/jobs", f"/jobs?user={owner}", f"/jobs?job_id={other['job_id']}&per_page=500"):
        text = client.get(url).get_data(as_text=True)
        assert f"/jobs/{other['cluster_name']}/{other['job_id']}\"" not in text, url
    exported = client.get("/jobs/export.csv?per_page=1000").get_data(as_text=True)
    users = {row["user"] for row in csv.DictReader(io.StringIO(exported))}
    assert users == {STUDENT}
    staff = client_as(app, STAFF)
    assert staff.get(f"/jobs/{other['cluster_name']}/{other['job_id']}").status_code == 200
    assert client.get(f"/users/{owner}").status_code == 404
    assert staff.get(f"/users/{owner}").status_code == 200


def test_running_jobs_of_a_node_respect_visibility(app: Flask, db: Database[Any]) -> None:
    doc = db.jobs.find_one(
        {
            "cw.user": {"$nin": [STUDENT, None]},
            "slurm.job_state": "RUNNING",
            "slurm.cluster_name": "mila",
            "cw.node_names.0": {"$exists": True},
        }
    )
    if doc is None:
        pytest.skip("no running job of another user in the data set")
    node = doc["cw"]["node_names"][0]
    link = f"/jobs/mila/{doc['slurm']['job_id']}\""
    assert link in client_as(app, STAFF).get(f"/nodes/mila/{node}").get_data(as_text=True)
    assert link not in client_as(app, STUDENT).get(f"/nodes/mila/{node}").get_data(as_text=True)


# --------------------------------------------------------------------------- escaping


def test_slurm_strings_stay_text(app: Flask, db: Database[Any]) -> None:
    now = datetime.now(UTC)
    job = Job(
        cluster_name="mila",
        job_id=777_000_001,
        name=XSS,
        username="student",
        account='"><img src=x onerror=alert(2)>',
        partition="main",
        job_state="FAILED",
        exit_code=1,
        submit_time=now - timedelta(hours=2),
        start_time=now - timedelta(hours=1),
        end_time=now,
        working_directory="/home/<b>student</b>",
        steps=[
            {"step_id": "batch", "name": XSS, "state": "FAILED", "exit_code": 1, "signal": None}
        ],
    )
    db.jobs.insert_one(job_document(job, user=STUDENT, seen=now, scrape_id="t"))
    client = client_as(app, STUDENT)
    for url in ("/", "/jobs?columns=job_id,name,account", "/jobs/mila/777000001"):
        html = client.get(url).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert XSS not in html, url
        assert "<img src=x" not in html, url
    exported = client.get("/jobs/export.csv?job_id=777000001").get_data(as_text=True)
    assert XSS in exported  # CSV is data, served as text/csv with nosniff


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    assert _csv_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert _csv_cell("@SUM(1)") == "'@SUM(1)"
    assert _csv_cell("train") == "train"
    assert _csv_cell(None) == ""
    assert _csv_cell(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01T00:00:00Z"


# --------------------------------------------------------------------------- CSRF, CSP


def _post_rules(app: Flask) -> list[str]:
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("pages.") and "POST" in (rule.methods or ()):
            values = {
                name: "mila" if name == "cluster" else (1 if name == "job_id" else STUDENT)
                for name in rule.arguments
            }
            if "fmt" in rule.arguments:
                continue
            urls.append(adapter.build(rule.endpoint, values, method="POST"))
    return urls


def test_every_post_needs_the_csrf_token(app: Flask, db: Database[Any]) -> None:
    urls = _post_rules(app)
    assert len(urls) >= 9
    client = client_as(app, ADMIN)
    before = db.users.find_one({"email": STUDENT})
    for url in urls:
        answer = client.post(
            url,
            data={
                "theme": "dark",
                "language": "fr",
                "status": "disabled",
                "roles": "admin",
                "name": "x",
            },
        )
        assert answer.status_code == 400, url
        assert b"CSRF" in answer.data, url
    after = db.users.find_one({"email": STUDENT})
    assert before == after
    token = csrf_of(client)
    answer = client.post(
        "/preferences/theme", data={"theme": "dark", "next": "/jobs", "csrf_token": token}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/jobs"


def test_csp_on_every_page(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, ADMIN)
    for url in page_urls(db) + ADMIN_URLS + ["/login"]:
        csp = client.get(url).headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp, url


# --------------------------------------------------------------------------- languages, themes


def test_french_from_the_browser_or_the_setting(app: Flask, db: Database[Any]) -> None:
    fr = client_as(app, STUDENT, **{"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    html = fr.get("/").get_data(as_text=True)
    assert '<html lang="fr"' in html and "Tableau de bord" in html and "Mes tâches" in html
    assert "Aller au contenu principal" in fr.get("/jobs").get_data(as_text=True)
    en = client_as(app, STUDENT, **{"Accept-Language": "en"})
    assert "Dashboard" in en.get("/").get_data(as_text=True)
    token = csrf_of(en)
    en.post("/preferences/language", data={"language": "fr", "csrf_token": token, "next": "/"})
    assert db.users.find_one({"email": STUDENT})["settings"]["language"] == "fr"
    assert "Tableau de bord" in en.get("/").get_data(as_text=True)
    anonymous = client_as(app, None, **{"Accept-Language": "fr"})
    assert "Se connecter" in anonymous.get("/login").get_data(as_text=True)


def test_every_string_of_the_pages_is_translated() -> None:
    from pathlib import Path

    from babel.messages.pofile import read_po

    po = Path(__file__).parent.parent / "clockwork_web/translations/fr/LC_MESSAGES/messages.po"
    catalog = read_po(po.open("rb"))
    untranslated = [
        m.id
        for m in catalog
        if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))
    ]
    assert not untranslated
    assert po.with_suffix(".mo").stat().st_mtime >= po.stat().st_mtime - 1


def test_theme_follows_the_system_until_chosen(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, STUDENT)
    assert 'data-theme="system"' in client.get("/").get_data(as_text=True)
    client.post("/preferences/theme", data={"theme": "dark", "csrf_token": csrf_of(client)})
    assert 'data-theme="dark"' in client.get("/").get_data(as_text=True)
    assert (
        client.post(
            "/preferences/theme", data={"theme": "pink", "csrf_token": csrf_of(client)}
        ).status_code
        == 400
    )


# --------------------------------------------------------------------------- settings, tokens


def test_settings_are_saved_and_used(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, STUDENT)
    token = csrf_of(client)
    form = {
        "csrf_token": token,
        "theme": "light",
        "language": "",
        "timezone": "America/Montreal",
        "date_format": "iso",
        "per_page": "10",
        "job_columns": ["job_id", "name", "cpus"],
    }
    assert client.post("/settings", data=form).status_code == 302
    settings = db.users.find_one({"email": STUDENT})["settings"]
    assert settings["timezone"] == "America/Montreal" and settings["per_page"] == 10
    html = client.get("/jobs").get_data(as_text=True)
    assert html.count("<tr>") <= 11 + 1
    assert "America/Montreal" in html
    assert ">CPUs<" in html and ">Submitted<" not in html
    bad = client.post("/settings", data={**form, "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "Mars/Olympus" in bad.get_data(as_text=True)


def test_a_token_is_shown_once_and_can_be_revoked(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, STUDENT)
    created = client.post(
        "/settings/tokens",
        data={"csrf_token": csrf_of(client), "name": "laptop", "expires_days": "30"},
    )
    assert created.status_code == 201
    secret = re.search(r'<code id="new-token">(cw_[^<]+)</code>', created.get_data(as_text=True))
    assert secret
    api = app.test_client().get("/api/v1/jobs", headers={"Authorization": f"Bearer {secret[1]}"})
    assert api.status_code in (200, 404)  # 404 only if the REST API is not registered
    again = client.get("/settings").get_data(as_text=True)
    assert secret[1] not in again and "laptop" in again
    doc = db.api_tokens.find_one({"user_email": STUDENT, "name": "laptop"})
    revoked = client.post(
        f"/settings/tokens/{doc['_id']}/revoke", data={"csrf_token": csrf_of(client)}
    )
    assert revoked.status_code == 302
    assert db.api_tokens.find_one({"_id": doc["_id"]}) is None
    empty = client.post("/settings/tokens", data={"csrf_token": csrf_of(client), "name": " "})
    assert empty.status_code == 400 and 'id="token-error"' in empty.get_data(as_text=True)


def test_props_are_edited_by_the_owner_only(app: Flask, db: Database[Any]) -> None:
    job = a_job(db, **{"cw.user": STUDENT, "slurm.cluster_name": "mila"})
    url = f"/jobs/mila/{job['job_id']}"
    client = client_as(app, STUDENT)
    saved = client.post(
        url + "/props",
        data={"csrf_token": csrf_of(client), "name": ["lr", ""], "value": ["0.01", ""]},
    )
    assert saved.status_code == 302
    assert "0.01" in client.get(url).get_data(as_text=True)
    assert (
        client.get("/jobs?prop_name=lr&prop_value=0.01").get_data(as_text=True).count(url + '"')
        == 1
    )
    removed = client.post(
        url + "/props",
        data={
            "csrf_token": csrf_of(client),
            "original": "lr",
            "name": ["lr", ""],
            "value": ["0.01", ""],
            "delete": "lr",
        },
    )
    assert removed.status_code == 302
    assert db.job_user_props.find_one({"job_id": job["job_id"]})["props"] == {}
    staff = client_as(app, STAFF)
    refused = staff.post(
        url + "/props", data={"csrf_token": csrf_of(staff), "name": "x", "value": "y"}
    )
    assert refused.status_code == 403
    too_big = client.post(
        url + "/props", data={"csrf_token": csrf_of(client), "name": "big", "value": "x" * 5000}
    )
    assert too_big.status_code == 400 and 'id="props-error"' in too_big.get_data(as_text=True)


# --------------------------------------------------------------------------- admin


def test_an_admin_disables_a_user_and_it_takes_effect(app: Flask, db: Database[Any]) -> None:
    student = client_as(app, STUDENT)
    assert student.get("/").status_code == 200
    admin = client_as(app, ADMIN)
    answer = admin.post(
        f"/admin/users/{STUDENT}/status", data={"csrf_token": csrf_of(admin), "status": "disabled"}
    )
    assert answer.status_code == 302
    assert db.users.find_one({"email": STUDENT})["status"] == "disabled"
    assert student.get("/").status_code == 403
    entry = db.audit_log.find_one({"action": "user.status", "target": STUDENT})
    assert entry["user_email"] == ADMIN and entry["result"] == "ok"
    assert STUDENT in admin.get("/admin/audit").get_data(as_text=True)
    itself = admin.post(
        f"/admin/users/{ADMIN}/status", data={"csrf_token": csrf_of(admin), "status": "disabled"}
    )
    assert itself.status_code == 400
    assert db.users.find_one({"email": ADMIN})["status"] == "enabled"


def test_admin_edits_roles_and_accounts_staff_cannot(app: Flask, db: Database[Any]) -> None:
    admin = client_as(app, ADMIN)
    token = csrf_of(admin)
    assert (
        admin.post(
            f"/admin/users/{STUDENT}/roles", data={"csrf_token": token, "roles": ["user", "staff"]}
        ).status_code
        == 302
    )
    assert db.users.find_one({"email": STUDENT})["roles"] == ["user", "staff"]
    bad = admin.post(
        f"/admin/users/{STUDENT}/accounts", data={"csrf_token": token, "cluster_accounts": "mila"}
    )
    assert bad.status_code == 400 and "cluster:username" in bad.get_data(as_text=True)
    ok = admin.post(
        f"/admin/users/{STUDENT}/accounts",
        data={"csrf_token": token, "cluster_accounts": "mila:student; narval:stu2"},
    )
    assert ok.status_code == 302
    assert db.users.find_one({"email": STUDENT})["account_keys"] == ["mila/student", "narval/stu2"]
    staff = client_as(app, STAFF)
    refused = staff.post(
        f"/admin/users/{STUDENT}/status", data={"csrf_token": csrf_of(staff), "status": "disabled"}
    )
    assert refused.status_code == 403


# --------------------------------------------------------------------------- sorting, exports


def test_sort_headers_link_and_reverse(app: Flask) -> None:
    client = client_as(app, STAFF)
    html = client.get("/jobs?sort=job_id&order=asc").get_data(as_text=True)
    assert re.search(
        r'aria-sort="ascending"[^>]*>\s*<a href="/jobs\?sort=job_id&amp;order=desc"', html
    )
    ids = [int(x) for x in re.findall(r'<th scope="row"><a href="/jobs/[^/]+/(\d+)"', html)]
    assert ids == sorted(ids) and ids


def test_exports_stream_the_current_result(app: Flask, db: Database[Any]) -> None:
    client = client_as(app, STAFF)
    answer = client.get("/jobs/export.csv?state=FAILED&cluster=mila")
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    expected = db.jobs.count_documents(
        {
            "slurm.cluster_name": "mila",
            "slurm.job_state": {
                "$in": [
                    "BOOT_FAIL",
                    "CANCELLED",
                    "DEADLINE",
                    "FAILED",
                    "NODE_FAIL",
                    "OUT_OF_MEMORY",
                    "PREEMPTED",
                    "REVOKED",
                    "SPECIAL_EXIT",
                    "TIMEOUT",
                ]
            },
        }
    )
    assert len(rows) == expected > 0
    assert {r["cluster_name"] for r in rows} == {"mila"}
    data = client.get("/jobs/export.json?state=RUNNING").get_json()
    assert data and {d["slurm"]["job_state"] for d in data} <= STATE_BUCKETS["RUNNING"]


# --------------------------------------------------------------------------- plain functions


def test_usage_per_day_splits_jobs_across_days() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    now = datetime(2024, 5, 3, 12, tzinfo=UTC)
    jobs = [
        {
            "start_time": datetime(2024, 5, 1, 22, tzinfo=UTC),
            "end_time": datetime(2024, 5, 2, 2, tzinfo=UTC),
            "num_cpus": 2,
            "num_gpus": 1,
        },
        {"start_time": datetime(2024, 5, 3, 11, tzinfo=UTC), "end_time": None, "num_cpus": 4},
        {"start_time": None, "end_time": None, "num_cpus": 8},
    ]
    days = usage_per_day(jobs, since, now)
    assert [(d.day.day, d.cpu_hours, d.gpu_hours) for d in days] == [
        (1, 4.0, 2.0),
        (2, 4.0, 2.0),
        (3, 4.0, 0.0),
    ]
    montreal = usage_per_day(jobs, since, now, "America/Montreal")
    assert sum(d.cpu_hours for d in montreal) == 12.0


def test_gpu_allocation_series_and_now() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    now = since + timedelta(hours=3)
    jobs = [
        {
            "cluster_name": "mila",
            "start_time": since + timedelta(minutes=30),
            "end_time": since + timedelta(hours=2),
            "num_gpus": 2,
        }
    ]
    assert allocation_series(jobs, since, now) == {"mila": [1.0, 2.0, 0.0, 0.0]}
    nodes = [
        {"cluster_name": "mila", "gpu_type": "a100", "num_gpus": 4, "alloc_gpus": 3},
        {"cluster_name": "mila", "gpu_type": "a100", "num_gpus": 4, "alloc_gpus": None},
        {"cluster_name": "mila", "num_gpus": 0},
    ]
    assert allocation_now(nodes) == {("mila", "a100"): {"total": 8, "allocated": 3, "nodes": 2}}


def test_fold_arrays_groups_the_tasks_of_a_page() -> None:
    def doc(job_id: int, array: int | None) -> dict[str, Any]:
        return {"slurm": {"cluster_name": "c", "job_id": job_id, "array_job_id": array}}

    rows = fold_arrays([doc(1, None), doc(2, 2), doc(3, 2), doc(4, None), doc(5, 2)])
    assert [(r["doc"]["slurm"]["job_id"], len(r["tasks"] or [])) for r in rows] == [
        (1, 0),
        (2, 3),
        (4, 0),
    ]


def test_prefs_defaults_and_validation() -> None:
    assert prefs_of({"theme": "neon", "per_page": 7, "timezone": "Nowhere"}).theme == "system"
    assert prefs_of(None, 25).per_page == 25
    assert prefs_of({"job_columns": ["bogus"]}).job_columns == DEFAULT_JOB_COLUMNS
    with pytest.raises(Exception, match="per_page"):
        parse_prefs_form(
            {"theme": ["dark"], "date_format": ["iso"], "per_page": ["3"], "job_columns": ["name"]}
        )


def test_job_page_lists_the_array_tasks_around_its_own(app: Flask, db: Database[Any]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    docs = [
        job_document(
            Job(
                cluster_name="mila",
                job_id=900_000 + task,
                array_job_id=900_000,
                array_task_id=task,
                job_state="COMPLETED" if task % 3 else "FAILED",
                username="student",
                submit_time=now,
            ),
            user=STUDENT,
            seen=now,
            scrape_id="t",
        )
        for task in range(60)
    ]
    db.jobs.insert_many(docs)
    page = client_as(app, STUDENT).get("/jobs/mila/900030").get_data(as_text=True)
    shown = [int(t) for t in re.findall(r">900000_(\d+)</a>", page)]
    assert shown == list(range(18, 43))  # 12 on each side, in order
    assert 'aria-current="true"><a href="/jobs/mila/900030">900000_30<' in page
    assert "/jobs?cluster=mila&amp;array_job_id=900000" in page  # all of them
    first = client_as(app, STUDENT).get("/jobs/mila/900001").get_data(as_text=True)
    assert [int(t) for t in re.findall(r">900000_(\d+)</a>", first)] == list(range(25))
