"""Live: submit a mix of jobs to the Slurm 22.05 testbed, scrape it locally and over SSH.

Needs the testbed (``scripts/slurm_testbed.sh up``) and, for the SSH half, a
real sshd (``openssh-server``); each skips with its reason otherwise. Polls
with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import pwd
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config, load_config
from clockwork_core.db import ensure_indexes, get_client
from slurm_state import scrape
from test_common.slurm import JOBS_DIR, as_user, is_final, run, slurm_testbed, submit  # noqa: F401
from test_common.sshd import SshServer, sshd_server  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_testbed")]

C = "testcluster"
NAME = 'live|name "q" <b>é</b>'
#: slurmdbd stores double quotes in job names as backticks (what sacct prints)
STORED_NAME = NAME.replace('"', "`")


def wait_final(job_ids: list[int], expected: int, timeout: float = 90.0) -> None:
    """Poll sacct until ``expected`` records (jobs and array tasks) are all final."""
    deadline = time.monotonic() + timeout
    ids = ",".join(map(str, job_ids))
    while True:
        out = run(["sacct", "-X", "-j", ids, "--parsable2", "--noheader", "--format=JobID,State"])
        states = [line.split("|", 1)[1] for line in out.splitlines() if "|" in line]
        if len(states) >= expected and all(is_final(s) for s in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs {ids} not final after {timeout:g}s: {states}")
        time.sleep(0.5)


def wait_cancelled_recorded(job_id: int, since: datetime, timeout: float = 60.0) -> None:
    """Poll until ``sacct --state=CANCELLED`` shows the job's complete record.

    Accounting is asynchronous: for a second or so after a pending job is
    cancelled, that query can return a half-written record (JobName
    ``allocation``, ReqMem ``16?``), which the scraper rightly skips and
    reads again at the next scrape (the window overlaps).
    """
    deadline = time.monotonic() + timeout
    args = ["sacct", "--allusers", "-X", "--parsable2", "--noheader", "--state=CANCELLED"]
    # a day early: sacct reads -S in local time, whatever the host's timezone
    args += ["-S", (since - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"), "-E", "now"]
    args += ["--format=JobIDRaw,JobName,ReqMem"]
    while True:
        lines = [line.split("|") for line in run(args).splitlines()]
        if [str(job_id), "cancel-me", "256M"] in lines:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id}: no complete CANCELLED record after {timeout:g}s")
        time.sleep(0.5)


def live_config(mongo_uri: str, db_name: str, cluster: dict[str, Any]) -> Config:
    return load_config(
        path=None,
        env={},
        overrides={
            "database.uri": mongo_uri,
            "database.name": db_name,
            "clusters": {C: cluster},
            "scraper.initial_lookback_days": 1,
        },
    )


@pytest.fixture(scope="module")
def submitted() -> dict[str, Any]:
    """The mix of jobs, submitted once for the module, all in a final state."""
    chdir = f"--chdir={JOBS_DIR}"
    out = f"--output={JOBS_DIR}/live-%j.out"
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    ok = submit([chdir, out, "-J", NAME, "--wrap", "true"], user="alice")
    three = submit([chdir, out, "-J", "exit-three", "--wrap", "exit 3"], user="bob")
    array = submit([chdir, out, "-J", "live-array", "--array=1-3", "--wrap", "true"], user="alice")
    cancel = submit(
        [chdir, out, "-J", "cancel-me", "--begin=now+600", "--wrap", "sleep 300"], user="alice"
    )
    run(as_user(["scancel", str(cancel)], "alice"))
    wait_final([ok, three, array, cancel], expected=6)  # the array has 3 tasks
    wait_cancelled_recorded(cancel, before)
    return {"ok": ok, "three": three, "array": array, "cancel": cancel, "before": before}


def check_documents(db: Database[Any], jobs: dict[str, Any]) -> None:
    def doc(job_id: int) -> dict[str, Any]:
        found = db.jobs.find_one({"slurm.cluster_name": C, "slurm.job_id": job_id})
        assert found is not None, f"job {job_id} not stored"
        return found["slurm"]

    alice = pwd.getpwnam("alice").pw_uid
    ok = doc(jobs["ok"])
    assert ok["name"] == STORED_NAME and ok["username"] == "alice" and ok["account"] == "research"
    assert ok["job_state"] == "COMPLETED" and ok["exit_code"] == 0
    assert ok["partition"] == "debug" and ok["nodes"] == "node001" and ok["num_nodes"] == 1
    assert ok["num_cpus"] >= 1 and ok["working_directory"] == str(JOBS_DIR)
    assert jobs["before"] <= ok["submit_time"] <= ok["start_time"] <= ok["end_time"]
    assert ok["tres_allocated"].get("cpu", 0) >= 1 and ok["time_limit"] is not None
    assert ok["array_job_id"] is None and ok["cancelled_by"] is None

    three = doc(jobs["three"])
    assert three["job_state"] == "FAILED" and three["exit_code"] == 3
    assert three["username"] == "bob" and three["account"] == "physics"
    assert three["end_time"] is not None

    cancelled = doc(jobs["cancel"])
    assert cancelled["job_state"] == "CANCELLED" and cancelled["cancelled_by"] == alice
    assert cancelled["end_time"] is not None  # (22.05 sets Start = cancel time too)

    tasks = list(db.jobs.find({"slurm.cluster_name": C, "slurm.array_job_id": jobs["array"]}))
    assert sorted(t["slurm"]["array_task_id"] for t in tasks) == [1, 2, 3]
    assert all(t["slurm"]["job_state"] == "COMPLETED" for t in tasks)

    node = db.nodes.find_one({"slurm.cluster_name": C, "slurm.name": "node001"})
    assert node is not None and node["slurm"]["cpus"] >= 1
    drained = db.nodes.find_one({"slurm.cluster_name": C, "slurm.name": "bigmem001"})
    assert drained is not None and "DRAIN" in drained["slurm"]["state_flags"]


def test_local_scrape_after_a_2_hour_gap(
    db: Database[Any], mongo_uri: str, submitted: dict[str, Any]
) -> None:
    config = live_config(mongo_uri, db.name, {"fetch": "local", "nodes_format": "scontrol"})
    # the previous scrape ran 2 hours ago: the jobs above all ran in the gap
    first = scrape.scrape_cluster(config, db, C, now=datetime.now(UTC) - timedelta(hours=2))
    assert first.ok, first.error
    assert first.slurm_version == "22.05"
    assert db.jobs.find_one({"slurm.job_id": submitted["three"]}) is None
    result = scrape.scrape_cluster(config, db, C)
    assert result.ok, result.error
    assert result.counts.skipped == 0, result.parse_errors
    check_documents(db, submitted)
    event = db.job_events.find_one({"cluster_name": C, "job_id": submitted["three"]})
    assert event["old_state"] is None and event["new_state"] == "FAILED"
    assert db.cluster_status.find_one({"cluster_name": C})["last_error_message"] is None


def test_json_jobs_and_sinfo_json_nodes(
    db: Database[Any], mongo_uri: str, submitted: dict[str, Any]
) -> None:
    config = live_config(
        mongo_uri, db.name, {"fetch": "local", "jobs_format": "json", "nodes_format": "sinfo-json"}
    )
    result = scrape.scrape_cluster(config, db, C)
    assert result.ok, result.error
    three = db.jobs.find_one({"slurm.cluster_name": C, "slurm.job_id": submitted["three"]})
    # 22.05's JSON says exit 0 for everything; the state is still right
    assert three["slurm"]["job_state"] == "FAILED"
    assert db.nodes.find_one({"slurm.name": "node001"}) is not None


def _ssh_cluster(server: SshServer, known_hosts: Path) -> dict[str, Any]:
    return {
        "fetch": "ssh",
        "nodes_format": "scontrol",
        "ssh": {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "key_file": str(server.keys["ed25519"]),
            "known_hosts": str(known_hosts),
            "connect_timeout_s": 5,
            "command_timeout_s": 60,
        },
    }


def test_ssh_scrape_equals_local_scrape(
    db: Database[Any],
    mongo_uri: str,
    submitted: dict[str, Any],
    sshd_server: SshServer,  # noqa: F811
) -> None:
    config = live_config(mongo_uri, db.name, _ssh_cluster(sshd_server, sshd_server.known_hosts))
    result = scrape.scrape_cluster(config, db, C)
    assert result.ok, result.error
    check_documents(db, submitted)
    local_db = get_client(mongo_uri)[db.name + "_local"]
    try:
        ensure_indexes(local_db)
        local = live_config(mongo_uri, local_db.name, {"fetch": "local"})
        assert scrape.scrape_cluster(local, local_db, C).ok
        for key in ("ok", "three", "cancel"):
            query = {"slurm.cluster_name": C, "slurm.job_id": submitted[key]}
            assert db.jobs.find_one(query)["slurm"] == local_db.jobs.find_one(query)["slurm"]
    finally:
        get_client(mongo_uri).drop_database(local_db.name)


def test_ssh_unknown_host_key_is_refused(
    db: Database[Any], mongo_uri: str, sshd_server: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = live_config(mongo_uri, db.name, _ssh_cluster(sshd_server, empty))
    result = scrape.scrape_cluster(config, db, C)
    assert not result.ok and "unknown host key" in (result.error or "")
    status = db.cluster_status.find_one({"cluster_name": C})
    assert "unknown host key" in status["last_error_message"]
    assert db.jobs.find_one({}) is None


def test_cli_scrape_prints_progress_and_summary(
    db: Database[Any], mongo_uri: str, tmp_path: Path, submitted: dict[str, Any]
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'[database]\nuri = "{mongo_uri}"\nname = "{db.name}"\n'
        f'[scraper]\ninitial_lookback_days = 1\n[clusters.{C}]\nfetch = "local"\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slurm_state",
            "scrape",
            "--all",
        ],
        env={
            "CLOCKWORK_CONFIG": str(toml),
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{C}: ok jobs new=")
    assert lines[-1].startswith("1 cluster(s), 0 failed: jobs new=")
