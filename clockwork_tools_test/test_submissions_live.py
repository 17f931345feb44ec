"""Submissions, output files and the ``clockwork`` command against the real app.

The cluster ``testcluster`` submits through slurmrestd at an address where
nothing listens, so a submission is accepted and stays PENDING (the state
Clockwork gives a submission it could not send yet): enough to exercise
submit, duplicate uuids, listing and cancel without a Slurm. Output files are
real files in a temporary directory, owned by this process's user, which the
test's submission document names as the job's user.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import clockwork_tools as cw
from clockwork_tools._main import run
from test_common.webapp import STUDENT, LiveServer, live_server_submit  # noqa: F401

NO_FILE = Path("/nonexistent/clockwork.toml")
ME = getpass.getuser()
OWNER = "owner@example.org"


@pytest.fixture
def server(live_server_submit: LiveServer) -> LiveServer:  # noqa: F811
    """The app, plus a user whose Slurm account on testcluster is this process's user."""
    live_server_submit.db.users.insert_one(
        {"email": OWNER, "display_name": "Owner", "status": "enabled", "roles": ["user"],
         "cluster_accounts": {"testcluster": ME}, "account_keys": [f"testcluster/{ME}"],
         "settings": {}}
    )  # fmt: skip
    return live_server_submit


@pytest.fixture
def owner(server: LiveServer) -> Iterator[cw.Client]:
    with cw.Client(server.url, server.token(OWNER), env={}, config_file=NO_FILE) as client:
        yield client


@pytest.fixture
def finished(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    """A finished job of OWNER with its stdout, stderr and an output directory."""
    out_dir = tmp_path / "job"
    (out_dir / "results").mkdir(parents=True)
    stdout = out_dir / "slurm-4242.out"
    stdout.write_bytes(b"".join(b"line %d\n" % i for i in range(2000)))
    (out_dir / "slurm-4242.err").write_bytes(b"a warning\n")
    (out_dir / "results" / "metrics.json").write_text('{"acc": 0.9}')
    now = datetime.now(UTC)
    doc = {
        "uuid": str(uuid.uuid4()), "user_email": OWNER, "cluster_name": "testcluster",
        "username": ME, "source": "submit", "task": {"name": "generic", "slurm": {}},
        "notification": None, "state": "COMPLETED", "slurm_state": "COMPLETED",
        "job_id": 4242, "cwd": str(out_dir), "dirs": [str(out_dir / "results")],
        "stdout": str(stdout), "stderr": str(out_dir / "slurm-4242.err"), "attempts": 1,
        "next_attempt": None, "last_error": None, "created_at": now, "updated_at": now,
        "submitted_at": now, "history": [{"time": now, "state": "COMPLETED", "note": "test"}],
    }  # fmt: skip
    server.db.submissions.insert_one(dict(doc))
    return {"doc": doc, "dir": out_dir, "stdout": stdout}


def cli(server: LiveServer, email: str, *argv: str, sleep: Any = None) -> tuple[int, str, str]:
    """Run ``clockwork ARGV`` in-process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    env_argv = ["--url", server.url, "--token", server.token(email), *argv]
    kwargs = {"sleep": sleep} if sleep is not None else {}
    status = run(env_argv, stdout=out, stderr=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- submissions


def test_submit_list_get_duplicate_cancel(server: LiveServer, owner: cw.Client) -> None:
    sub = owner.submit("testcluster", cmd="python", params=["train.py", "; rm -rf ~"],
                       slurm={"time": "10", "job_name": "t1"})  # fmt: skip
    assert isinstance(sub, cw.Submission)
    assert sub.state == "PENDING" and sub.cluster_name == "testcluster" and not sub.is_final
    assert sub.raw["params"] == ["train.py", "; rm -rf ~"]

    with pytest.raises(cw.ConflictError) as info:
        owner.submit("testcluster", cmd="true", uuid=sub.uuid)
    assert info.value.status_code == 409
    assert info.value.body["submission"]["uuid"] == sub.uuid

    with pytest.raises(cw.BadRequestError, match="not_an_option"):
        owner.submit("testcluster", cmd="true", slurm={"not_an_option": 1})

    assert owner.submission(sub.uuid).uuid == sub.uuid
    page = owner.submissions()
    assert sub.uuid in {s.uuid for s in page}
    assert sub.uuid in {s.uuid for s in owner.iter_submissions(state="PENDING")}

    cancelled = owner.cancel(sub.uuid)
    assert cancelled.state == "CANCELLED" and cancelled.is_final
    with pytest.raises(cw.NotFoundError):
        owner.submission("no-such-uuid")


def test_another_user_cannot_see_or_cancel(server: LiveServer, owner: cw.Client) -> None:
    sub = owner.submit("testcluster", script="#!/bin/bash\necho hi\n")
    with cw.Client(server.url, server.token(STUDENT), env={}, config_file=NO_FILE) as student:
        with pytest.raises((cw.NotFoundError, cw.PermissionDeniedError)):
            student.submission(sub.uuid)
        with pytest.raises((cw.NotFoundError, cw.PermissionDeniedError)):
            student.cancel(sub.uuid)


def test_adopt(server: LiveServer, owner: cw.Client) -> None:
    now = datetime.now(UTC)
    server.db.jobs.insert_one(
        {"slurm": {"cluster_name": "testcluster", "job_id": 777, "username": ME,
                   "job_state": "RUNNING", "name": "elsewhere", "submit_time": now},
         "cw": {"user": OWNER, "first_seen": now, "last_seen": now, "node_names": []}}
    )  # fmt: skip
    sub = owner.adopt("testcluster", 777)
    assert (sub.job_id, sub.state, sub.source) == (777, "RUNNING", "monitor")
    with pytest.raises(cw.ConflictError):
        owner.adopt("testcluster", 777)
    with pytest.raises(cw.ServerError) as info:  # not scraped: the cluster is asked, unreachable
        owner.adopt("testcluster", 999_999)
    assert info.value.status_code == 503
    with pytest.raises(cw.BadRequestError, match="cluster"):
        owner.adopt("nosuchcluster", 1)


def test_files_read_and_download(
    owner: cw.Client, finished: dict[str, Any], tmp_path: Path
) -> None:
    uid = finished["doc"]["uuid"]
    files = {f.kind: f for f in owner.files(uid)}
    assert files["stdout"].path == str(finished["stdout"])
    assert files["stdout"].size == finished["stdout"].stat().st_size
    assert any(f.path.endswith("metrics.json") for f in owner.files(uid))

    whole = finished["stdout"].read_bytes()
    assert owner.read_file(uid, "stdout") == whole
    assert owner.read_file(uid, files["stdout"].path, offset=100, limit=10) == whole[100:110]
    assert owner.read_file(uid, "stdout", offset=len(whole)) == b""

    dest = tmp_path / "downloads"
    dest.mkdir()
    written = owner.download(uid, files["stdout"].path, dest)
    assert written == dest / "slurm-4242.out" and written.read_bytes() == whole
    assert owner.download(uid, "stderr", dest / "err.txt").read_bytes() == b"a warning\n"
    buffer = io.BytesIO()
    owner.download(uid, str(finished["dir"] / "results" / "metrics.json"), buffer)
    assert json.loads(buffer.getvalue()) == {"acc": 0.9}
    assert not [p for p in dest.iterdir() if p.name.startswith(".cw-download-")]

    with pytest.raises(cw.PermissionDeniedError):
        owner.read_file(uid, "/etc/passwd")
    with pytest.raises((cw.PermissionDeniedError, cw.NotFoundError)):
        owner.read_file(uid, str(finished["dir"]) + "/../../../etc/passwd")


def test_download_in_ranges_beyond_the_server_limit(
    server: LiveServer, owner: cw.Client, finished: dict[str, Any], tmp_path: Path
) -> None:
    small = server.config.clusters["testcluster"].submit.model_copy(update={"max_file_bytes": 1000})
    server.config.clusters["testcluster"] = server.config.clusters["testcluster"].model_copy(
        update={"submit": small}
    )
    uid = finished["doc"]["uuid"]
    with pytest.raises(cw.BadRequestError):  # 413 for the whole file at once
        owner.request("GET", f"/api/v1/submissions/{uid}/files/stdout")
    target = owner.download(uid, "stdout", tmp_path / "out.txt")
    assert target.read_bytes() == finished["stdout"].read_bytes()


# --------------------------------------------------------------------------- the command


def test_cli_jobs_job_nodes_and_json(server: LiveServer) -> None:
    status, out, err = cli(server, STUDENT, "jobs", "--per-page", "5")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["CLUSTER", "JOB_ID", "NAME"] and len(lines) == 6

    status, out, _ = cli(server, STUDENT, "--json", "jobs", "--all")
    mine = server.db.jobs.count_documents({"cw.user": STUDENT})
    assert status == 0 and len(json.loads(out)) == mine

    doc = server.db.jobs.find_one({"cw.user": STUDENT})
    cluster, job_id = doc["slurm"]["cluster_name"], str(doc["slurm"]["job_id"])
    status, out, _ = cli(server, STUDENT, "job", cluster, job_id)
    assert status == 0 and "job_id" in out and job_id in out
    status, out, _ = cli(server, STUDENT, "--json", "job", job_id, "--cluster", cluster)
    assert status == 0 and json.loads(out)["slurm"]["job_id"] == int(job_id)

    status, out, _ = cli(server, STUDENT, "nodes", "--all")
    assert status == 0 and len(out.splitlines()) == 1 + server.db.nodes.estimated_document_count()
    for command in (["gpus"], ["clusters"], ["me"], ["token", "check"]):
        status, out, err = cli(server, STUDENT, *command)
        assert status == 0 and out.strip(), (command, err)
    assert cli(server, STUDENT, "token", "check")[1].startswith(f"token OK: {STUDENT}")


def test_cli_props(server: LiveServer) -> None:
    doc = server.db.jobs.find_one({"cw.user": STUDENT})
    cluster, job_id = doc["slurm"]["cluster_name"], str(doc["slurm"]["job_id"])
    assert cli(server, STUDENT, "props", "set", cluster, job_id, "a=1", "b=two")[0] == 0
    status, out, _ = cli(server, STUDENT, "props", "get", cluster, job_id)
    assert status == 0 and out.splitlines() == ["a=1", "b=two"]
    assert cli(server, STUDENT, "props", "del", job_id, "a", "--cluster", cluster)[0] == 0
    status, out, _ = cli(server, STUDENT, "--json", "props", "get", cluster, job_id)
    assert json.loads(out) == {"b": "two"}


def test_cli_errors_and_exit_status(server: LiveServer) -> None:
    status, out, err = cli(server, STUDENT, "job", "nosuchcluster", "1")
    assert (status, out) == (1, "") and "HTTP 404" in err and err.startswith("clockwork: error:")
    status, _, err = cli(server, STUDENT, "jobs", "--state", "BOGUS")
    assert status == 1 and "state" in err
    status, _, err = cli(server, STUDENT, "job", "abc", "--cluster", "x")
    assert status == 2 and "number" in err
    status, _, err = cli(server, STUDENT, "frobnicate")
    assert status == 2 and "invalid choice" in err
    out, err_io = io.StringIO(), io.StringIO()
    assert run(["--url", server.url, "--token", "cw_bad", "me"], stdout=out, stderr=err_io) == 1
    assert "HTTP 401" in err_io.getvalue()


def test_cli_submit_cancel_watch(server: LiveServer, tmp_path: Path) -> None:
    status, out, err = cli(server, OWNER, "submit", "--cluster", "testcluster", "--time", "5",
                           "--", "python", "-c", "print('hi; there')")  # fmt: skip
    assert status == 0, err
    uid, state = out.split()[:2]
    assert state == "PENDING"
    stored = server.db.submissions.find_one({"uuid": uid})
    assert stored["task"]["cmd"] == ["python"]
    assert stored["task"]["params"] == ["-c", "print('hi; there')"]

    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --time=5\necho from a file\n")
    status, out, err = cli(
        server, OWNER, "--json", "submit", str(script), "--cluster", "testcluster"
    )
    assert status == 0, err and json.loads(out)["state"] == "PENDING"
    assert cli(server, OWNER, "submit", "--cluster", "testcluster")[0] == 2  # neither
    assert cli(server, OWNER, "submit", str(tmp_path / "missing.sh"))[0] == 2

    status, out, _ = cli(server, OWNER, "cancel", uid)
    assert status == 0 and out.split()[1] == "CANCELLED"
    status, out, _ = cli(server, OWNER, "watch", uid)
    assert status == 0 and out.split()[-1] == "CANCELLED"
    status, out, _ = cli(server, OWNER, "submissions")
    assert status == 0 and uid in out


def test_cli_watch_follows_a_job_to_its_end(server: LiveServer) -> None:
    doc = server.db.jobs.find_one({"cw.user": STUDENT, "slurm.job_state": "PENDING"}) or (
        server.db.jobs.find_one({"cw.user": STUDENT})
    )
    key = {
        "slurm.cluster_name": doc["slurm"]["cluster_name"],
        "slurm.job_id": doc["slurm"]["job_id"],
    }
    server.db.jobs.update_one(key, {"$set": {"slurm.job_state": "PENDING"}})
    script = iter(["RUNNING", "RUNNING", "COMPLETED"])
    waits: list[float] = []

    def scraper_tick(seconds: float) -> None:  # the "scraper" moves the job on between polls
        waits.append(seconds)
        server.db.jobs.update_one(key, {"$set": {"slurm.job_state": next(script)}})

    status, out, err = cli(server, STUDENT, "watch", doc["slurm"]["cluster_name"],
                           str(doc["slurm"]["job_id"]), "--interval", "1", sleep=scraper_tick)  # fmt: skip
    assert status == 0, err
    assert [line.split()[1] for line in out.splitlines()] == ["PENDING", "RUNNING", "COMPLETED"]
    assert waits == [1.0, 1.0, 1.5]  # back off while nothing changes


def test_cli_output_and_follow(server: LiveServer, finished: dict[str, Any]) -> None:
    uid = finished["doc"]["uuid"]
    status, out, _ = cli(server, OWNER, "output", uid)
    assert status == 0 and out == finished["stdout"].read_text()
    status, out, _ = cli(server, OWNER, "output", uid, "--stderr")
    assert out == "a warning\n"
    # a running job whose output grows between polls
    server.db.submissions.update_one({"uuid": uid}, {"$set": {"state": "RUNNING"}})
    finished["stdout"].write_bytes(b"first\n")
    steps = iter([b"second\n", b"third\n", None])

    def tick(_: float) -> None:
        data = next(steps)
        if data is None:
            server.db.submissions.update_one({"uuid": uid}, {"$set": {"state": "COMPLETED"}})
        else:
            with finished["stdout"].open("ab") as fh:
                fh.write(data)

    status, out, err = cli(
        server, OWNER, "output", uid, "--follow", "--interval", "0.5", sleep=tick
    )
    assert status == 0, err
    assert out == "first\nsecond\nthird\n"
    status, out, _ = cli(server, OWNER, "files", uid)
    assert status == 0 and "metrics.json" in out


def test_console_script_in_a_subprocess(server: LiveServer) -> None:
    exe = Path(sys.executable).with_name("clockwork")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "clockwork_tools"]
    env = {**os.environ, "CLOCKWORK_URL": server.url, "CLOCKWORK_TOKEN": server.token(STUDENT),
           "CLOCKWORK_CONFIG_FILE": str(NO_FILE)}  # fmt: skip
    done = subprocess.run([*command, "--json", "me"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["email"] == STUDENT
    done = subprocess.run([*command, "job", "nosuch", "1"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1 and "404" in done.stderr and done.stdout == ""
    done = subprocess.run([sys.executable, "-m", "clockwork_tools", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0 and "usage: clockwork" in done.stdout
