"""Exporters: Prometheus text from a real database; Elasticsearch actions and errors.

No Elasticsearch server can run here: the actions are checked, and a sink
pointed at a closed port must fail with a clear ExportError, quickly.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.database import Database

from clockwork_core.schema import Job, Node
from slurm_state import store
from slurm_state.export_elasticsearch import (
    ElasticsearchSink,
    ExportError,
    index_name,
    job_actions,
    redact_url,
)
from slurm_state.export_prometheus import LIVE_MATCH, collect_metrics, write_textfile

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _job(job_id: int, state: str, **kw: Any) -> Job:
    fields: dict[str, Any] = {
        "cluster_name": "c1",
        "job_id": job_id,
        "username": "alice",
        "partition": "gpu",
        "job_state": state,
        "submit_time": NOW - timedelta(hours=1),
    }
    fields.update(kw)
    return Job(**fields)


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_gauges_from_the_database(db: Database[Any], tmp_path: Path) -> None:
    jobs = [
        _job(1, "RUNNING", num_gpus=2),
        _job(2, "RUNNING", num_gpus=1, username="bob"),
        _job(3, "PENDING"),
        _job(4, "COMPLETED", end_time=NOW - timedelta(hours=2)),
        _job(5, "FAILED", end_time=NOW - timedelta(days=3)),  # outside the 24 h window
        _job(6, "RUNNING", cluster_name="c2", partition="cpu"),
    ]
    store.store_jobs(db, "c1", jobs[:5], scrape_id="s", now=NOW)
    store.store_jobs(db, "c2", jobs[5:], scrape_id="s", now=NOW)
    store.store_nodes(
        db,
        "c1",
        [
            Node(cluster_name="c1", name="g1", state="mixed", num_gpus=4, alloc_gpus=3),
            Node(cluster_name="c1", name="g2", state="idle", num_gpus=4, alloc_gpus=0),
            Node(cluster_name="c1", name="b1", state="down", state_flags=["DRAIN"]),
        ],
        scrape_id="s",
        now=NOW,
    )
    owner = store.new_lease_owner()
    store.acquire_lease(db, "c1", owner, seconds=60, now=NOW)
    outcome = store.ScrapeOutcome(started=NOW, duration_s=2.5)
    outcome.counts.jobs_new = 5
    store.finish_scrape(db, "c1", owner, outcome)
    store.record_failure(db, "c2", NOW, "ssh: cannot connect")

    s = _samples(collect_metrics(db, now=NOW, per_user=True))
    key = lambda name, **labels: (name, tuple(sorted(labels.items())))  # noqa: E731
    assert s[key("clockwork_jobs", cluster="c1", partition="gpu", state="RUNNING")] == 2
    assert s[key("clockwork_jobs", cluster="c1", partition="gpu", state="PENDING")] == 1
    assert s[key("clockwork_jobs", cluster="c2", partition="cpu", state="RUNNING")] == 1
    assert not any(k[0] == "clockwork_jobs" and ("state", "COMPLETED") in k[1] for k in s)
    assert s[key("clockwork_jobs_gpus", cluster="c1", state="RUNNING")] == 3
    assert s[key("clockwork_jobs_ended_24h", cluster="c1", partition="gpu", state="COMPLETED")] == 1
    assert not any(k[0] == "clockwork_jobs_ended_24h" and ("state", "FAILED") in k[1] for k in s)
    assert s[key("clockwork_user_jobs", cluster="c1", user="bob", state="RUNNING")] == 1
    assert s[key("clockwork_nodes", cluster="c1", state="mixed")] == 1
    assert s[key("clockwork_nodes", cluster="c1", state="down")] == 1
    assert s[key("clockwork_gpus_total", cluster="c1")] == 8
    assert s[key("clockwork_gpus_allocated", cluster="c1")] == 3
    assert s[key("clockwork_scrape_duration_seconds", cluster="c1")] == 2.5
    assert s[key("clockwork_scrape_success", cluster="c1")] == 1
    assert s[key("clockwork_scrape_success", cluster="c2")] == 0
    assert s[key("clockwork_scrape_records", cluster="c1", kind="jobs_new")] == 5

    path = tmp_path / "prom" / "clockwork.prom"
    write_textfile(db, path)
    assert "clockwork_nodes" in path.read_text()


def test_prometheus_per_user_series_only_when_asked(db: Database[Any], tmp_path: Path) -> None:
    """Slurm usernames stay out of the metrics (web and textfile) unless configured."""
    jobs = [_job(1, "RUNNING"), _job(2, "PENDING", username="bob")]
    store.store_jobs(db, "c1", jobs, scrape_id="s", now=NOW)
    default = collect_metrics(db, now=NOW)
    assert b"clockwork_user_jobs" not in default
    assert b"alice" not in default and b"bob" not in default
    assert (
        _samples(default)[
            ("clockwork_jobs", (("cluster", "c1"), ("partition", "gpu"), ("state", "RUNNING")))
        ]
        == 1
    )
    path = tmp_path / "clockwork.prom"
    write_textfile(db, path)
    assert "clockwork_user_jobs" not in path.read_text() and "bob" not in path.read_text()
    write_textfile(db, path, per_user=True)
    assert 'user="bob"' in path.read_text()
    with_users = _samples(collect_metrics(db, now=NOW, per_user=True))
    assert (
        with_users[
            ("clockwork_user_jobs", (("cluster", "c1"), ("state", "PENDING"), ("user", "bob")))
        ]
        == 1
    )


def test_prometheus_job_queries_use_indexes(db: Database[Any]) -> None:
    for match in (
        LIVE_MATCH,
        {"slurm.end_time": {"$gte": NOW}},
    ):
        plan = str(db.jobs.find(match).explain()["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, plan


def test_elasticsearch_actions_are_idempotent_per_cluster() -> None:
    jobs = [
        _job(1, "COMPLETED", end_time=NOW, name="<b>x|y</b>"),
        _job(2, "RUNNING", cluster_name="Mila"),
    ]
    actions = list(job_actions(jobs))
    assert [a["_id"] for a in actions] == ["c1-1", "Mila-2"]
    assert [a["_index"] for a in actions] == ["clockwork-jobs-c1", "clockwork-jobs-mila"]
    assert all(a["_op_type"] == "index" for a in actions)
    src = actions[0]["_source"]
    assert src["end_time"] == NOW.isoformat() and src["name"] == "<b>x|y</b>"
    assert src["job_state"] == "COMPLETED" and "cw" not in src
    assert index_name("A.B") == "clockwork-jobs-a.b"


def test_elasticsearch_unreachable_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = ElasticsearchSink(f"http://elastic:s3cret@127.0.0.1:{port}", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(ExportError) as err:
        sink.send([_job(1, "RUNNING")])
    assert "cannot connect" in str(err.value)
    assert "s3cret" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    assert time.monotonic() - started < 20
    sink.close()


def test_redact_url() -> None:
    assert redact_url("https://u:p@es.example.org:9200/x?y=1") == "https://es.example.org:9200/x"
