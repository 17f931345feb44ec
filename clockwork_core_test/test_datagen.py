"""The data generator: deterministic, realistic, consistent, and loadable."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError

from clockwork_core.hostlist import expand
from clockwork_core.schema import JOB_STATES, Job, Node, job_document, state_bucket
from test_common import datagen
from test_common.embedded_db import _free_port

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SEED = 7


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    clusters = datagen.generate_clusters(SEED, ["testcluster"])
    users = datagen.generate_users(60, clusters, SEED, now=NOW)
    nodes = list(datagen.generate_nodes(clusters, SEED, now=NOW))
    jobs = list(datagen.generate_jobs(5000, users, nodes, SEED, now=NOW))
    return {"clusters": clusters, "users": users, "nodes": nodes, "jobs": jobs}


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_data(world: dict[str, Any]) -> None:
    clusters = datagen.generate_clusters(SEED, ["testcluster"])
    assert clusters == world["clusters"]
    assert datagen.generate_users(60, clusters, SEED, now=NOW) == world["users"]
    nodes = list(datagen.generate_nodes(clusters, SEED, now=NOW))
    assert nodes == world["nodes"]
    again = list(
        itertools.islice(datagen.generate_jobs(5000, world["users"], nodes, SEED, NOW), 500)
    )
    assert again == world["jobs"][:500]


def test_different_seed_different_data(world: dict[str, Any]) -> None:
    users = datagen.generate_users(60, world["clusters"], SEED + 1, now=NOW)
    assert users != world["users"]
    assert list(datagen.generate_nodes(world["clusters"], SEED + 1, now=NOW)) != world["nodes"]
    other = list(
        itertools.islice(datagen.generate_jobs(5000, users, world["nodes"], SEED + 1, NOW), 200)
    )
    assert other != world["jobs"][:200]


def test_jobs_stream_lazily(world: dict[str, Any]) -> None:
    """A billion jobs is fine as long as nobody materialises them."""
    stream = datagen.generate_jobs(10**9, world["users"], world["nodes"], SEED, NOW)
    first = list(itertools.islice(stream, 20))
    assert len(first) == 20 and all(isinstance(j, Job) for j in first)


def test_jobs_need_nodes(world: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least one node"):
        datagen.generate_jobs(10, world["users"], [], SEED, NOW)


# --------------------------------------------------------------------------- clusters, users


def test_clusters_defaults_plus_config_names() -> None:
    names = [c["name"] for c in datagen.generate_clusters(1, ["mila", "cedar", "cedar"])]
    assert names == ["mila", "narval", "beluga", "cedar"]


def test_users_shape_and_demo_logins(world: dict[str, Any]) -> None:
    users = world["users"]
    cluster_names = {c["name"] for c in world["clusters"]}
    assert [u["email"] for u in users[:3]] == [
        "admin@example.org",
        "staff@example.org",
        "student@example.org",
    ]
    assert [u["roles"] for u in users[:3]] == [["admin"], ["staff"], ["user"]]
    for demo in users[:3]:
        assert set(demo["cluster_accounts"]) == cluster_names
        assert demo["status"] == "enabled"
    assert users[41]["email"] == "user042@example.org"
    assert len({u["email"] for u in users}) == len(users)
    for user in users:
        assert user["status"] in ("enabled", "disabled")
        assert user["settings"] == {}
        assert user["created_at"].tzinfo is not None and user["created_at"] < NOW
        assert user["account_keys"] == [f"{c}/{a}" for c, a in user["cluster_accounts"].items()]
    for cluster in cluster_names:  # one Clockwork user per cluster account
        accounts = [
            u["cluster_accounts"][cluster] for u in users if cluster in u["cluster_accounts"]
        ]
        assert len(accounts) == len(set(accounts))
    assert any(len(u["cluster_accounts"]) < len(cluster_names) for u in users)


# --------------------------------------------------------------------------- nodes, gpus


def test_nodes_are_varied_and_consistent(world: dict[str, Any]) -> None:
    nodes: list[Node] = world["nodes"]
    states = Counter(n.state for n in nodes)
    assert {"idle", "mixed", "allocated", "down", "drained"} <= set(states)
    assert any(n.num_gpus for n in nodes) and any(not n.num_gpus for n in nodes)
    gpu_names = {g["name"] for g in datagen.generate_gpus()}
    reasons = [n.reason for n in nodes if n.reason]
    assert any('"' in r for r in reasons) or any(":" in r for r in reasons)
    assert any(not r.isascii() for r in reasons) or len(reasons) < 10
    keys = [(n.cluster_name, n.name) for n in nodes]
    assert len(keys) == len(set(keys))
    for node in nodes:
        assert node.partitions and node.features and node.cpus
        assert 0 <= node.alloc_cpus <= node.cpus
        if node.num_gpus:
            assert node.gpu_type in gpu_names
            assert node.gres.startswith(f"gpu:{node.gpu_type}:{node.num_gpus}")
            assert 0 <= node.alloc_gpus <= node.num_gpus
        if node.state in ("down", "drained"):
            assert node.reason and node.reason_time <= NOW


def test_gpus_are_unique_specs() -> None:
    gpus = datagen.generate_gpus()
    assert len({g["name"] for g in gpus}) == len(gpus)
    a100 = next(g for g in gpus if g["name"] == "a100")
    assert a100["vendor"] == "NVIDIA" and a100["memory_gb"] == 40
    assert isinstance(a100["tflops_fp32"], float)


# --------------------------------------------------------------------------- jobs


def test_every_state_appears(world: dict[str, Any]) -> None:
    seen = Counter(j.job_state for j in world["jobs"])
    assert set(seen) == JOB_STATES
    assert seen.most_common(1)[0][0] == "COMPLETED"
    assert seen["COMPLETED"] > len(world["jobs"]) / 2
    assert seen["RUNNING"] > 20 and seen["PENDING"] > 20


def test_ids_increase_and_are_unique_per_cluster(world: dict[str, Any]) -> None:
    last: dict[str, int] = {}
    previous_submit = None
    for job in world["jobs"]:
        assert job.job_id > last.get(job.cluster_name, -1)
        last[job.cluster_name] = job.job_id
        assert previous_submit is None or job.submit_time >= previous_submit
        previous_submit = job.submit_time
    assert len(last) == len(world["clusters"])


def test_times_are_consistent(world: dict[str, Any]) -> None:
    oldest = NOW - timedelta(days=datagen.HISTORY_DAYS)
    for job in world["jobs"]:
        assert job.submit_time.tzinfo is not None and job.submit_time.microsecond == 0
        assert oldest <= job.submit_time <= NOW
        bucket = state_bucket(job.job_state)
        if bucket == "PENDING":
            assert job.start_time is None and job.end_time is None and job.nodes is None
        elif bucket == "RUNNING":
            assert job.submit_time <= job.start_time <= NOW and job.end_time is None
            assert (NOW - job.start_time) < timedelta(minutes=job.time_limit)
        else:
            assert job.end_time is not None and job.submit_time <= job.end_time <= NOW
            if job.start_time is not None:
                assert job.submit_time <= job.start_time <= job.end_time
        if job.start_time is None:
            assert job.tres_allocated == {} and job.steps == [] and job.nodes is None
        if job.job_state == "TIMEOUT" and job.start_time:
            assert job.end_time - job.start_time >= timedelta(minutes=job.time_limit)


def test_exit_codes_efficiency_and_steps(world: dict[str, Any]) -> None:
    jobs = world["jobs"]
    for job in jobs:
        finished = state_bucket(job.job_state) in ("COMPLETED", "FAILED")
        assert (job.exit_code is not None) == finished
        if job.job_state == "COMPLETED":
            assert job.exit_code == 0
        if job.job_state == "FAILED":
            assert job.exit_code > 0
        assert (job.cancelled_by is not None) == (job.job_state == "CANCELLED")
        if finished and job.start_time:
            assert 0 <= job.cpu_efficiency <= 1 and 0 <= job.mem_efficiency <= 1
        else:
            assert job.cpu_efficiency is None and job.mem_efficiency is None
        for step in job.steps:
            assert set(step) == {"step_id", "name", "state", "exit_code", "signal"}
    completed = next(j for j in jobs if j.job_state == "COMPLETED" and j.steps)
    assert completed.steps[0]["state"] == "COMPLETED" and completed.steps[0]["exit_code"] == 0
    assert any(j.steps and j.steps[0]["step_id"] == "batch" for j in jobs)


def test_tres_and_gpus_agree(world: dict[str, Any]) -> None:
    gpu_jobs = 0
    for job in world["jobs"]:
        tres = job.tres_allocated or job.tres_requested
        assert tres["cpu"] == job.num_cpus and tres["mem"] == job.mem_mb
        assert tres["node"] == job.num_nodes
        assert all(isinstance(v, int) for v in tres.values())
        assert job.num_gpus == tres.get("gres/gpu", 0)
        if job.num_gpus:
            gpu_jobs += 1
            if job.tres_allocated:
                assert (
                    job.gpu_type and job.tres_allocated[f"gres/gpu:{job.gpu_type}"] == job.num_gpus
                )
        else:
            assert job.gpu_type is None
            assert not any(k.startswith("gres/gpu") for k in tres)
    assert gpu_jobs > 100


def test_arrays_and_het_jobs_follow_slurm(world: dict[str, Any]) -> None:
    arrays: dict[tuple[str, int], list[Job]] = {}
    hets: dict[tuple[str, int], list[Job]] = {}
    for job in world["jobs"]:
        if job.array_job_id is not None:
            arrays.setdefault((job.cluster_name, job.array_job_id), []).append(job)
        if job.het_job_id is not None:
            hets.setdefault((job.cluster_name, job.het_job_id), []).append(job)
    assert len(arrays) >= 5 and any(len(tasks) > 1 for tasks in arrays.values())
    for (_, array_id), tasks in arrays.items():
        first = min(tasks, key=lambda j: j.array_task_id)
        assert first.job_id == array_id
        assert len({t.array_task_id for t in tasks}) == len(tasks)
    assert hets
    for (_, het_id), parts in hets.items():
        assert sorted(p.het_job_offset for p in parts) == list(range(len(parts)))
        assert next(p for p in parts if p.het_job_offset == 0).job_id == het_id
        assert len({(p.job_state, p.start_time, p.end_time, p.exit_code) for p in parts}) == 1


def test_odd_names_and_users(world: dict[str, Any]) -> None:
    jobs = world["jobs"]
    names = {j.name for j in jobs}
    assert "<script>alert(1)</script>" in names
    assert any("|" in n for n in names)
    assert any('"' in n for n in names)
    assert any(not n.isascii() for n in names)
    assert any(len(n) > 150 for n in names)
    known = {
        (cluster, account)
        for user in world["users"]
        for cluster, account in user["cluster_accounts"].items()
    }
    owners = Counter((j.cluster_name, j.username) in known for j in jobs)
    assert owners[True] > 0.9 * len(jobs) and owners[False] > 0
    demo = {(c, a) for u in world["users"][:3] for c, a in u["cluster_accounts"].items()}
    assert any((j.cluster_name, j.username) in demo for j in jobs)


def test_job_nodes_exist_and_expand(world: dict[str, Any]) -> None:
    nodes_of = {(n.cluster_name, n.name): n for n in world["nodes"]}
    multi = 0
    for job in world["jobs"]:
        if job.nodes is None:
            continue
        names = expand(job.nodes)
        assert len(names) == job.num_nodes
        multi += len(names) > 1
        for name in names:
            node = nodes_of[(job.cluster_name, name)]
            if job.num_gpus:
                assert node.gpu_type == job.gpu_type
    assert multi > 0


def test_compress_hostlist_round_trips() -> None:
    names = ["cn-a001", "cn-a002", "cn-a003", "cn-a007", "ng10101", "login"]
    expr = datagen.compress_hostlist(names)
    assert expr == "login,cn-a[001-003,007],ng10101"
    assert sorted(expand(expr)) == sorted(names)


# --------------------------------------------------------------------------- loading


def test_load_dataset_writes_everything(db: Any) -> None:
    calls: list[tuple[int, int]] = []
    result = datagen.load_dataset(
        db,
        n_jobs=1500,
        n_users=40,
        seed=3,
        batch_size=600,
        progress=lambda d, t: calls.append((d, t)),
        now=NOW,
    )
    assert result["reused"] is False
    assert result["jobs"] == 1500 and result["users"] == 40 and result["duplicates"] == 0
    assert calls == [(600, 1500), (1200, 1500), (1500, 1500)]
    assert db.jobs.estimated_document_count() == 1500
    assert db.users.estimated_document_count() == 40
    assert db.nodes.estimated_document_count() == result["nodes"] > 100
    assert db.gpus.estimated_document_count() == len(datagen.generate_gpus())

    admin = db.users.find_one({"email": "admin@example.org"})
    assert admin["roles"] == ["admin"] and set(admin["cluster_accounts"]) == set(result["clusters"])
    mine = db.jobs.find_one({"cw.user": "admin@example.org"})
    assert mine["slurm"]["username"] == admin["cluster_accounts"][mine["slurm"]["cluster_name"]]
    stranger = db.jobs.find_one({"cw.user": None})
    assert stranger is not None and stranger["slurm"]["username"].startswith(("ghost", "root"))
    assert mine["cw"]["first_seen"] == mine["slurm"]["submit_time"]

    statuses = list(db.cluster_status.find({"cluster_name": {"$in": result["clusters"]}}))
    assert len(statuses) == len(result["clusters"]) == 3
    assert sum(s["counts"]["jobs"] for s in statuses) == 1500
    assert all(s["last_error"] is None and s["last_success"] == NOW for s in statuses)

    existing = db.jobs.find_one({}, {"_id": 0})
    with pytest.raises(DuplicateKeyError):
        db.jobs.insert_one(existing)


def test_load_dataset_reuses_or_replaces(db: Any) -> None:
    first = datagen.load_dataset(db, n_jobs=300, n_users=10, seed=1, now=NOW)
    assert first["jobs"] == 300
    db.users.insert_one({"email": "someone@else.org", "roles": ["user"]})

    reused = datagen.load_dataset(db, n_jobs=900, n_users=10, seed=2, now=NOW)
    assert reused["reused"] is True and reused["jobs"] == 300

    replaced = datagen.load_dataset(db, n_jobs=500, n_users=12, seed=2, now=NOW, replace=True)
    assert replaced["reused"] is False and replaced["jobs"] == 500 and replaced["duplicates"] == 0
    assert db.jobs.estimated_document_count() == 500
    assert db.users.find_one({"email": "someone@else.org"}) is not None
    assert db.users.estimated_document_count() == 13


def test_load_dataset_skips_documents_already_there(db: Any) -> None:
    """A load interrupted half way can be resumed: existing documents are skipped."""
    clusters = datagen.generate_clusters(5)
    users = datagen.generate_users(8, clusters, 5, now=NOW)
    nodes = list(datagen.generate_nodes(clusters, 5, now=NOW))
    job = next(datagen.generate_jobs(50, users, nodes, 5, NOW))
    db.jobs.insert_one(job_document(job, user=None, seen=NOW, scrape_id="x"))
    db.users.insert_one(dict(users[0]))
    result = datagen.load_dataset(db, n_jobs=50, n_users=8, seed=5, now=NOW, replace=False)
    assert result["reused"] is True  # jobs present: left alone
    db.jobs.delete_many({"slurm.job_id": job.job_id, "slurm.cluster_name": job.cluster_name})
    result = datagen.load_dataset(db, n_jobs=50, n_users=8, seed=5, now=NOW)
    assert result["jobs"] == 50 and result["users"] == 7 and result["duplicates"] == 1


# --------------------------------------------------------------------------- the script


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load_data.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def test_load_data_script(mongo_uri: str, db_name: str) -> None:
    try:
        done = _script("--uri", mongo_uri, "--db", db_name, "--jobs", "600", "--users", "20",
                       "--batch-size", "250", "--progress-every", "250")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "jobs 500/600" in done.stdout
        assert "loaded 600 jobs" in done.stdout
        again = _script("--uri", mongo_uri, "--db", db_name, "--jobs", "600")
        assert again.returncode == 0, again.stderr
        assert "already holds" in again.stdout
    finally:
        pymongo.MongoClient(mongo_uri).drop_database(db_name)


def test_load_data_script_unreachable_database() -> None:
    uri = f"mongodb://user:secret@127.0.0.1:{_free_port()}/?directConnection=true"
    done = _script("--uri", uri, "--timeout-ms", "300", "--jobs", "10")
    assert done.returncode == 2
    assert "cannot reach the database" in done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    bad = _script("--uri", "http://nope", "--jobs", "10")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
