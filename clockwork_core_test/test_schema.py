"""The shared schema, states and hostlists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clockwork_core import hostlist
from clockwork_core.schema import (
    FINAL_STATES,
    JOB_FIELDS,
    JOB_STATES,
    STATE_BUCKETS,
    Job,
    expand_states,
    job_document,
    job_from_dict,
    state_bucket,
)

CONTRACT = [
    "cluster_name",
    "job_id",
    "array_job_id",
    "array_task_id",
    "het_job_id",
    "het_job_offset",
    "name",
    "username",
    "account",
    "partition",
    "qos",
    "job_state",
    "cancelled_by",
    "exit_code",
    "signal",
    "submit_time",
    "start_time",
    "end_time",
    "time_limit",
    "nodes",
    "num_nodes",
    "num_cpus",
    "mem_mb",
    "num_gpus",
    "gpu_type",
    "tres_requested",
    "tres_allocated",
    "working_directory",
    "comment",
    "steps",
    "cpu_efficiency",
    "mem_efficiency",
]


def test_job_fields_are_the_contract() -> None:
    assert list(JOB_FIELDS) == CONTRACT


def test_buckets_partition_the_states() -> None:
    seen: set[str] = set()
    for states in STATE_BUCKETS.values():
        assert not seen & states
        seen |= states
    assert seen == JOB_STATES
    assert "SUSPENDED" not in FINAL_STATES
    assert {"TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED", "NODE_FAIL"} <= FINAL_STATES


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["completed"], ["COMPLETED"]),
        (["TIMEOUT", "COMPLETED"], ["TIMEOUT", "COMPLETED"]),
        (["PENDING"], sorted(STATE_BUCKETS["PENDING"])),
    ],
)
def test_expand_states(names: list[str], expected: list[str]) -> None:
    assert expand_states(names) == expected


def test_expand_states_refuses_unknown() -> None:
    with pytest.raises(ValueError, match="BOGUS"):
        expand_states(["BOGUS"])


def test_state_bucket() -> None:
    assert state_bucket("OUT_OF_MEMORY") == "FAILED"
    assert state_bucket("SUSPENDED") == "RUNNING"


def test_job_document_round_trip() -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    job = Job(cluster_name="c", job_id=5, nodes="node[001-002],gpu01", tres_allocated={"cpu": 4})
    doc = job_document(job, user="a@example.org", seen=now, scrape_id="s")
    assert doc["cw"]["node_names"] == ["node001", "node002", "gpu01"]
    assert doc["cw"]["user"] == "a@example.org"
    assert job_from_dict(doc["slurm"]) == job


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("node001", ["node001"]),
        ("node[001-003,007]", ["node001", "node002", "node003", "node007"]),
        ("cn-a[8-10],gpu01", ["cn-a8", "cn-a9", "cn-a10", "gpu01"]),
        ("None assigned", []),
        ("", []),
    ],
)
def test_hostlist_expand(expression: str, names: list[str]) -> None:
    assert hostlist.expand(expression) == names


@pytest.mark.parametrize("bad", ["node[3-1]", "node[a-b]", "node[1-2", "node[0-999999999]"])
def test_hostlist_refuses_bad_expressions(bad: str) -> None:
    with pytest.raises(hostlist.HostlistError):
        hostlist.expand(bad)


@given(st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=30, unique=True))
def test_hostlist_expands_what_slurm_would_print(numbers: list[int]) -> None:
    expression = "n[" + ",".join(f"{n:03d}" for n in numbers) + "]"
    assert hostlist.expand(expression) == [f"n{n:03d}" for n in numbers]
