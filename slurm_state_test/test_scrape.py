"""The scrape end to end on real reports and a real database, and its faults.

Reports come from captured 22.05 output (``scrape_data/``) or are rendered
from known Jobs by ``test_common.sacct_render``; they are read by the ``file``
fetcher or served by a stand-in runner that answers like sacct for a window.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from pymongo.database import Database

from clockwork_core.config import Config, load_config
from clockwork_core.db import ensure_indexes, get_client
from clockwork_core.schema import Job
from slurm_state import cli, scrape, store
from slurm_state.fetch import Fetcher, sacct_command
from slurm_state.parsers import SACCT_DELIMITER, SACCT_FIELDS
from test_common import embedded_db, sacct_render

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "scrape_data"  # captured on the 22.05 testbed
C = "testcluster"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

SCONTROL_NODES = (
    "NodeName=node001 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=2 CPUTot=2 "
    "CPULoad=0.10 AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:fake:2 "
    "NodeAddr=127.0.0.1 NodeHostName=node001 RealMemory=2048 AllocMem=0 State=IDLE "
    "Partitions=debug,gpu\n"
    "NodeName=bigmem001 CoresPerSocket=1 CPUAlloc=0 CPUTot=64 CPULoad=N/A "
    "Gres=(null) RealMemory=1024000 AllocMem=0 State=IDLE+DRAIN+NOT_RESPONDING "
    "Partitions=long Reason=maintenance: firmware upgrade [root@2026-11-21T10:00:00]\n"
)


def make_config(mongo_uri: str, db_name: str, clusters: dict[str, Any], **scraper: Any) -> Config:
    return load_config(
        path=None,
        env={},
        overrides={
            "database.uri": mongo_uri,
            "database.name": db_name,
            "database.timeout_ms": 1500,
            "clusters": clusters,
            **{f"scraper.{k}": v for k, v in scraper.items()},
        },
    )


def file_cluster(report_dir: Path) -> dict[str, Any]:
    return {"fetch": "file", "report_dir": str(report_dir), "slurm_version": "22.05"}


def jobs_fixture(
    n: int, start: datetime = T0, state: str = "COMPLETED", first_id: int = 1
) -> list[Job]:
    jobs = []
    for i in range(n):
        submit = start + timedelta(seconds=i)
        jobs.append(
            Job(
                cluster_name=C,
                job_id=first_id + i,
                name=f"name|with|pipes {i} <b>é</b>",
                username="alice" if i % 2 else "bob",
                account="research",
                partition="debug",
                qos="normal",
                job_state=state,
                exit_code=(i % 4) if state in ("COMPLETED", "FAILED") else None,
                submit_time=submit,
                start_time=submit + timedelta(seconds=2) if state != "PENDING" else None,
                end_time=(
                    submit + timedelta(seconds=60) if state in ("COMPLETED", "FAILED") else None
                ),
                time_limit=10,
                nodes="node001" if state != "PENDING" else None,
                num_nodes=1,
                num_cpus=1,
                working_directory="/tmp",
                tres_requested={"billing": 1, "cpu": 1, "mem": 256, "node": 1},
                tres_allocated=(
                    {"billing": 1, "cpu": 1, "mem": 256, "node": 1} if state != "PENDING" else {}
                ),
            )
        )
    return jobs


def write_reports(directory: Path, jobs: list[Job], extra_lines: list[str] = ()) -> None:  # type: ignore[assignment]
    directory.mkdir(parents=True, exist_ok=True)
    lines = list(sacct_render.psv_lines(jobs, SACCT_FIELDS, SACCT_DELIMITER))
    for i, extra in enumerate(extra_lines):
        lines.insert(1 + 3 * i, extra)
    (directory / "sacct-jobs.psv").write_text("".join(lines))
    (directory / "scontrol-nodes.txt").write_text(SCONTROL_NODES)


# --------------------------------------------------------------------------- happy path


def test_scrape_real_22_05_samples(db: Database[Any], mongo_uri: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "sacct-all.psv").write_bytes((SAMPLES / "sacct-all.psv").read_bytes())
    (reports / "scontrol-show-node-oneliner.txt").write_bytes(
        (SAMPLES / "scontrol-show-node-oneliner.txt").read_bytes()
    )
    config = make_config(mongo_uri, db.name, {C: file_cluster(reports)})
    db.users.insert_one({"email": "bob@example.org", "account_keys": [f"{C}/bob"]})
    result = scrape.scrape_cluster(config, db, C, now=T0)
    assert result.ok, result.error
    assert result.counts.jobs_new == 11 and result.counts.skipped == 0
    assert result.counts.nodes >= 7 and result.counts.events == 0  # first scrape: backfill
    failing = db.jobs.find_one({"slurm.cluster_name": C, "slurm.job_id": 4})
    assert failing["slurm"]["job_state"] == "FAILED" and failing["slurm"]["exit_code"] == 3
    assert failing["slurm"]["username"] == "bob" and failing["cw"]["user"] == "bob@example.org"
    cancelled = db.jobs.find_one({"slurm.cluster_name": C, "slurm.job_id": 2})
    assert cancelled["slurm"]["job_state"] == "CANCELLED"
    assert cancelled["slurm"]["cancelled_by"] == 1002
    status = db.cluster_status.find_one({"cluster_name": C})
    assert status["last_success"] == T0 and status["slurm_version"] == "22.05"
    assert status["counts"]["jobs_new"] == 11 and status["lease_owner"] is None
    # again: nothing changes, nothing is notified
    again = scrape.scrape_cluster(config, db, C, now=T0 + timedelta(minutes=1))
    assert again.ok and again.counts.jobs_unchanged == 11 and again.counts.jobs_new == 0
    assert again.counts.events == 0


def test_dry_run_writes_nothing(db: Database[Any], mongo_uri: str, tmp_path: Path) -> None:
    write_reports(tmp_path / "r", jobs_fixture(5))
    config = make_config(mongo_uri, db.name, {C: file_cluster(tmp_path / "r")})
    result = scrape.scrape_cluster(config, db, C, dry_run=True, now=T0)
    assert result.ok and result.counts.jobs_new == 5 and result.counts.nodes == 2
    assert db.jobs.find_one({}) is None and db.cluster_status.find_one({}) is None


# --------------------------------------------------------------------------- faults


def test_malformed_lines_are_skipped_and_reported(
    db: Database[Any], mongo_uri: str, tmp_path: Path
) -> None:
    bad = [
        SACCT_DELIMITER.join(["notanumber", "x", "y"]) + "\n",
        SACCT_DELIMITER.join(["77", "77", "n", "u"] + ["?"] * 4) + "\n",
    ]
    write_reports(tmp_path / "r", jobs_fixture(20), bad)
    config = make_config(mongo_uri, db.name, {C: file_cluster(tmp_path / "r")})
    result = scrape.scrape_cluster(config, db, C, now=T0)
    assert result.ok, result.error
    assert result.counts.jobs_new == 20 and result.counts.skipped == 2
    assert len(result.parse_errors) == 2 and "sacct-jobs.psv:" in result.parse_errors[0]
    status = db.cluster_status.find_one({"cluster_name": C})
    assert status["counts"]["skipped"] == 2 and len(status["warnings"]) == 2
    assert status["last_success"] == T0


def test_unreadable_report_fails_the_cluster_only(
    db: Database[Any], mongo_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "sacct-x").write_text("<html>502 Bad Gateway</html>\n")
    config = make_config(mongo_uri, db.name, {C: file_cluster(tmp_path / "r")})
    result = scrape.scrape_cluster(config, db, C, now=T0)
    assert not result.ok and "unreadable report" in (result.error or "")
    status = db.cluster_status.find_one({"cluster_name": C})
    assert status.get("last_success") is None and "unreadable" in status["last_error_message"]


def _sacct_json_report(ids: list[int], deep_after: int, depth: int) -> str:
    """A ``sacct --json`` report of real 22.05 jobs with these ids, and after the
    ``deep_after``-th one a job whose comment nests ``depth`` levels."""
    doc = json.loads((SAMPLES.parent / "fixtures" / "22.05" / "sacct.json").read_text())
    proto = next(j for j in doc["jobs"] if j["job_id"] == 6)
    jobs = [json.dumps({**proto, "job_id": i}) for i in ids]
    deep = json.dumps({**proto, "job_id": 999})[:-1]
    jobs.insert(deep_after, deep + ', "comment": ' + "[" * depth + "]" * depth + "}")
    return f'{{"meta": {json.dumps(doc["meta"])}, "errors": [], "jobs": [{",".join(jobs)}]}}'


def test_a_job_nested_too_deep_is_skipped_and_every_other_job_stored(
    db: Database[Any], mongo_uri: str, tmp_path: Path
) -> None:
    reports = tmp_path / "r"
    reports.mkdir()
    ids = list(range(1, 31))
    (reports / "sacct-jobs.json").write_text(_sacct_json_report(ids, 5, 3000))
    (reports / "scontrol-nodes.txt").write_text(SCONTROL_NODES)
    config = make_config(mongo_uri, db.name, {C: file_cluster(reports)})

    result = scrape.scrape_cluster(config, db, C, now=T0)

    assert result.ok, result.error
    assert result.counts.jobs_new == 30 and result.counts.skipped == 1
    assert "jobs[5]: nested deeper than 64 levels" in result.parse_errors[0]
    assert sorted(d["slurm"]["job_id"] for d in db.jobs.find({}, {"slurm.job_id": 1})) == ids


def test_scrape_creates_the_indexes_of_a_database_never_initialized(
    mongo_uri: str, tmp_path: Path
) -> None:
    from clockwork_core.db import INDEXES
    from test_common.query_plans import winning_stages

    name = f"cw_test_noinit_{os.getpid()}_{time.monotonic_ns()}"
    fresh = get_client(mongo_uri)[name]
    listing = ({"cw.user": "bob@example.org"}, [("slurm.submit_time", -1)])  # "my jobs"
    try:
        write_reports(tmp_path / "r", jobs_fixture(5))
        config = make_config(mongo_uri, name, {C: file_cluster(tmp_path / "r")})
        fresh.jobs.insert_one({"slurm": {"cluster_name": "other", "job_id": 1}})
        assert "COLLSCAN" in winning_stages(fresh, "jobs", *listing)

        result = scrape.scrape_cluster(config, fresh, C, now=T0)

        assert result.ok and result.counts.jobs_new == 5, result.error
        for collection, indexes in INDEXES.items():
            names = set(fresh[collection].index_information())
            assert {i.document["name"] for i in indexes} <= names, collection
        assert "COLLSCAN" not in winning_stages(fresh, "jobs", *listing)
        again = scrape.scrape_cluster(config, fresh, C, now=T0 + timedelta(minutes=1))
        assert again.ok and again.counts.jobs_unchanged == 5, again.error
    finally:
        get_client(mongo_uri).drop_database(name)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_unreachable_ssh_cluster_reported_others_still_scraped(
    db: Database[Any],
    mongo_uri: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_reports(tmp_path / "r", jobs_fixture(3))
    known = tmp_path / "known_hosts"
    known.write_text("")
    toml = tmp_path / "clockwork.toml"
    toml.write_text(f"""
[database]
uri = "{mongo_uri}"
name = "{db.name}"
timeout_ms = 2000

[clusters.down]
fetch = "ssh"
slurm_version = "22.05"
[clusters.down.ssh]
host = "127.0.0.1"
port = {_closed_port()}
user = "root"
known_hosts = "{known}"
connect_timeout_s = 2

[clusters.{C}]
fetch = "file"
report_dir = "{tmp_path / 'r'}"
""")
    monkeypatch.setenv("CLOCKWORK_CONFIG", str(toml))
    status = cli.main(["scrape", "--all"])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0].startswith("down: FAILED") and "cannot connect" in out[0]
    assert out[1].startswith(f"{C}: ok jobs new=3")
    assert out[-1].startswith("2 cluster(s), 1 failed ['down']")
    down = db.cluster_status.find_one({"cluster_name": "down"})
    assert "cannot connect" in down["last_error_message"] and down.get("last_success") is None
    assert db.cluster_status.find_one({"cluster_name": C})["last_success"] is not None
    # one cluster only, the good one: success
    assert cli.main(["scrape", "--cluster", C]) == 0
    assert cli.main(["scrape", "--cluster", C, "--dry-run"]) == 0


def test_lease_held_by_another_scraper(db: Database[Any], mongo_uri: str, tmp_path: Path) -> None:
    write_reports(tmp_path / "r", jobs_fixture(3))
    config = make_config(mongo_uri, db.name, {C: file_cluster(tmp_path / "r")})
    store.acquire_lease(db, C, "otherhost:1:x", seconds=600, now=datetime.now(UTC))
    result = scrape.scrape_cluster(config, db, C)
    assert not result.ok and "being scraped by otherhost:1:x" in (result.error or "")
    assert db.jobs.find_one({}) is None
    status = db.cluster_status.find_one({"cluster_name": C})
    assert status["lease_owner"] == "otherhost:1:x"  # untouched: not ours to judge
    assert status.get("last_error") is None


class SacctLike:
    """A runner that answers ``sacct -S -E`` like sacct: jobs active in the window."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.calls: list[list[str]] = []

    @contextlib.contextmanager
    def stream(self, args: list[str]) -> Iterator[BinaryIO]:
        import io

        self.calls.append(args)
        if args[0] == "sacct":
            start = datetime.fromisoformat(args[args.index("-S") + 1]).replace(tzinfo=UTC)
            end = datetime.fromisoformat(args[args.index("-E") + 1]).replace(tzinfo=UTC)
            visible = [
                j
                for j in self.jobs
                if j.submit_time <= end and (j.end_time is None or j.end_time >= start)
            ]
            text = "".join(sacct_render.psv_lines(visible, SACCT_FIELDS, SACCT_DELIMITER))
        else:
            text = SCONTROL_NODES
        yield io.BytesIO(text.encode())

    def output(self, args: list[str]) -> bytes:
        return b"slurm 22.05.8\n"

    def close(self) -> None:
        pass


def test_window_starts_at_watermark_minus_overlap_and_catches_a_2_hour_gap(
    db: Database[Any], mongo_uri: str
) -> None:
    config = make_config(mongo_uri, db.name, {C: {"fetch": "local"}}, overlap_minutes=15)
    early = jobs_fixture(3, start=T0 - timedelta(days=2))
    # these run while the scraper is down: submitted and ended inside the gap
    gap = jobs_fixture(4, start=T0 + timedelta(minutes=30), first_id=100)
    runner = SacctLike(early)
    fetcher = Fetcher(C, config.clusters[C], runner)
    first = scrape.scrape_cluster(config, db, C, now=T0, fetcher=fetcher)
    assert first.ok and first.counts.jobs_new == 3 and first.slurm_version == "22.05"
    args = runner.calls[0]
    assert args[args.index("-S") + 1] == "2026-11-14T10:00:00"  # initial_lookback_days = 7
    assert args[args.index("-E") + 1] == "2026-11-21T10:00:00"

    runner.jobs = early + gap
    later = T0 + timedelta(hours=2)
    second = scrape.scrape_cluster(
        config, db, C, now=later, fetcher=Fetcher(C, config.clusters[C], runner)
    )
    assert second.ok, second.error
    args = runner.calls[-2]
    assert args[args.index("-S") + 1] == "2026-11-21T09:45:00"  # watermark - overlap
    assert second.counts.jobs_new == 4 and second.counts.events == 4
    assert {e["job_id"] for e in db.job_events.find({})} == {100, 101, 102, 103}
    assert store.last_success(db, C) == later


def test_sacct_command_respects_22_05() -> None:
    args = sacct_command("psv", T0, T0 + timedelta(hours=1), "America/Montreal")
    assert args[:3] == ["sacct", "--allusers", "--parsable2"]
    assert f"--delimiter={SACCT_DELIMITER}" in args and "--noheader" not in args
    assert args[args.index("-S") + 1] == "2026-11-21T05:00:00"  # local time of the cluster
    assert "-E" in args
    assert sacct_command("json", T0, T0, "UTC")[:3] == ["sacct", "--allusers", "--json"]


# --------------------------------------------------------------------------- crashes


def _snapshot(db: Database[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    jobs = sorted(
        (d["slurm"]["job_id"], d["slurm"], d["cw"].get("user"))
        for d in db.jobs.find({}, {"_id": 0})
    )
    events = sorted(e["_id"] for e in db.job_events.find({}))
    nodes = sorted((d["slurm"]["name"], d["slurm"]) for d in db.nodes.find({}, {"_id": 0}))
    return jobs, events, nodes


def _clean_run(
    mongo_uri: str, name: str, reports: Path, steps: list[tuple[list[Job], datetime]]
) -> Any:
    clean = get_client(mongo_uri)[name]
    ensure_indexes(clean)
    config = make_config(mongo_uri, name, {C: file_cluster(reports)})
    for jobs, now in steps:
        write_reports(reports, jobs)
        assert scrape.scrape_cluster(config, clean, C, now=now).ok
    snap = _snapshot(clean)
    get_client(mongo_uri).drop_database(name)
    return snap


def test_database_restarted_mid_scrape_then_rerun_converges(tmp_path: Path, mongo_uri: str) -> None:
    server = embedded_db.up(tmp_path / "db")
    try:
        uri = server.uri
        config = make_config(uri, "restart", {C: file_cluster(tmp_path / "r")}, batch_size=100)
        db = get_client(uri, 1500)["restart"]
        ensure_indexes(db)
        first = jobs_fixture(300, state="RUNNING")
        write_reports(tmp_path / "r", first)
        assert scrape.scrape_cluster(config, db, C, now=T0).ok
        changed = jobs_fixture(600, state="COMPLETED")
        write_reports(tmp_path / "r", changed)

        stopped: list[bool] = []

        def stop_db_after_first_batch(jobs: list[Job]) -> None:
            if not stopped:
                stopped.append(embedded_db.down(tmp_path / "db"))

        result = scrape.scrape_cluster(
            config, db, C, now=T0 + timedelta(minutes=5), exporters=[stop_db_after_first_batch]
        )
        assert stopped == [True]
        assert not result.ok and result.error.startswith("database:"), result.error
        embedded_db.up(tmp_path / "db", port=server.port)
        rerun = scrape.scrape_cluster(config, db, C, now=T0 + timedelta(minutes=6))
        assert rerun.ok, rerun.error
        assert store.last_success(db, C) == T0 + timedelta(minutes=6)
        got = _snapshot(db)
    finally:
        embedded_db.down(tmp_path / "db", purge=True)
    want = _clean_run(
        mongo_uri,
        "restart_clean",
        tmp_path / "r2",
        [(first, T0), (changed, T0 + timedelta(minutes=6))],
    )
    assert got == want
    assert len(got[1]) == 600  # 300 RUNNING->COMPLETED + 300 new, each once


def test_killed_scrape_process_rerun_converges(
    db: Database[Any], mongo_uri: str, tmp_path: Path
) -> None:
    jobs = jobs_fixture(2000, state="RUNNING")
    write_reports(tmp_path / "r", jobs)
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'[database]\nuri = "{mongo_uri}"\nname = "{db.name}"\n[scraper]\nbatch_size = 50\n'
        f'[clusters.{C}]\nfetch = "file"\nreport_dir = "{tmp_path / "r"}"\n'
    )
    env = {**os.environ, "CLOCKWORK_CONFIG": str(toml), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "slurm_state", "scrape", "--all"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while db.jobs.estimated_document_count() < 100:
        assert proc.poll() is None, "the scrape finished before it could be killed"
        assert time.monotonic() < deadline, "no job stored in 60 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert 0 < db.jobs.estimated_document_count() < 2000
    assert store.last_success(db, C) is None  # the watermark did not move
    config = make_config(mongo_uri, db.name, {C: file_cluster(tmp_path / "r")})
    rerun = scrape.scrape_cluster(config, db, C, now=T0)  # takes over the dead process's lease
    assert rerun.ok, rerun.error
    got = _snapshot(db)
    want = _clean_run(mongo_uri, db.name + "_clean", tmp_path / "r2", [(jobs, T0)])
    assert got == want and len(got[0]) == 2000


# --------------------------------------------------------------------------- fetchers


def test_local_runner_checks_exit_status_stderr_and_timeout() -> None:
    from slurm_state.fetch import FetchError, LocalRunner

    runner = LocalRunner(timeout_s=1.0)
    assert runner.output(["printf", "%s", "a b;$(id)"]) == b"a b;$(id)"
    with pytest.raises(FetchError, match=r"exited 3: boom"):
        runner.output(["sh", "-c", "echo boom >&2; exit 3"])
    with pytest.raises(FetchError, match="cannot run"):
        runner.output(["/nonexistent/sacct", "-V"])
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        runner.output(["sleep", "30"])
    assert time.monotonic() - started < 10


def test_parse_version() -> None:
    from slurm_state.fetch import FetchError, parse_version

    assert parse_version(b"slurm 22.05.8\n") == "22.05"
    assert parse_version("slurm-wlm 23.02.1") == "23.02"
    with pytest.raises(FetchError):
        parse_version(b"command not found")


def test_file_fetcher_reads_the_newest_report(tmp_path: Path) -> None:
    from slurm_state.fetch import FetchError, FileFetcher

    config = make_config("mongodb://127.0.0.1:1", "x", {C: file_cluster(tmp_path)})
    fetcher = FileFetcher(C, config.clusters[C])
    with pytest.raises(FetchError, match="no jobs report"):
        fetcher.jobs(T0, T0).__enter__()
    old, new = tmp_path / "sacct-1.psv", tmp_path / "sacct-2.psv"
    old.write_text("old")
    new.write_text("new")
    os.utime(old, (1, 1))
    with fetcher.jobs(T0, T0) as report:
        assert report.source == str(new) and report.stream.read() == b"new"


def test_pyslurm_fetcher_needs_pyslurm() -> None:
    pytest.importorskip(
        "pyslurm", reason="pyslurm is not installable here (needs libslurm headers)"
    )


def test_watch_runs_until_told(
    db: Database[Any],
    mongo_uri: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_reports(tmp_path / "r", jobs_fixture(3))
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'[database]\nuri = "{mongo_uri}"\nname = "{db.name}"\n'
        f'[clusters.{C}]\nfetch = "file"\nreport_dir = "{tmp_path / "r"}"\n'
    )
    status = cli.main(["watch", "--config", str(toml), "--every", "0", "--iterations", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert [line.split(":")[0] for line in lines] == [
        C,
        "1 cluster(s), 0 failed",
        C,
        "1 cluster(s), 0 failed",
    ]
    assert "new=3" in lines[0] and "unchanged=3" in lines[2]
