"""Every fixture file, parsed: real Slurm 22.05 captures and the hand-made ones.

Each file of ``fixtures/22.05`` is either a report (listed in ``REPORTS`` with
its kind and how many records and errors it gives) or another capture (listed
in ``NOT_REPORTS``), which must be refused cleanly. A new fixture file fails
``test_every_fixture_is_classified`` until it is added to one of the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from clockwork_core.schema import JOB_FIELDS, JOB_STATES, NODE_FIELDS, Job, Node
from slurm_state.parsers import SlurmParseError, detect_format, parse_jobs, parse_nodes

FIXTURES = Path(__file__).parent / "fixtures" / "22.05"
CLUSTER = "testcluster"

#: file -> (kind, format auto-detected, records, errors)
REPORTS: dict[str, tuple[str, str, int, int]] = {
    "sacct-all.psv": ("jobs", "psv", 11, 0),
    "sacct-wide.psv": ("jobs", "psv", 11, 0),
    "sacct-X-wide.psv": ("jobs", "psv", 8, 3),  # array tasks without JobIDRaw: ids unknown
    "sacct.json": ("jobs", "json", 11, 0),
    "sacct-json-user-alice.json": ("jobs", "json", 11, 0),
    "rest-slurmdb-jobs.json": ("jobs", "json", 13, 0),
    "rest-slurmdb-job-get.json": ("jobs", "json", 1, 0),
    "squeue-after.json": ("jobs", "squeue-json", 13, 0),
    "squeue-running.json": ("jobs", "squeue-json", 11, 0),
    "squeue-json-user-alice.json": ("jobs", "squeue-json", 13, 0),
    "rest-jobs.json": ("jobs", "squeue-json", 13, 0),
    "rest-job-get.json": ("jobs", "squeue-json", 1, 0),
    "sinfo.json": ("nodes", "sinfo-json", 7, 0),
    "sinfo-json-partition-gpu.json": ("nodes", "sinfo-json", 7, 0),
    "rest-nodes.json": ("nodes", "sinfo-json", 7, 0),
    "sinfo-N-wide.txt": ("nodes", "sinfo-psv", 7, 0),
    "scontrol-show-node-oneliner.txt": ("nodes", "scontrol", 7, 0),
    "scontrol-show-node.txt": ("nodes", "scontrol", 7, 0),
    # hand-made (see fixtures/README.md)
    "handmade-sacct-special.usv": ("jobs", "psv", 16, 0),
    "handmade-sacct-pipes.psv": ("jobs", "psv", 16, 0),
    "handmade-sacct-special.json": ("jobs", "json", 14, 0),
    "handmade-sacct-v0.0.39.json": ("jobs", "json", 14, 0),
    "handmade-sacct-malformed.psv": ("jobs", "psv", 9, 4),
    "handmade-sacct-malformed.json": ("jobs", "json", 9, 2),
    "handmade-scontrol-node-odd.txt": ("nodes", "scontrol", 8, 0),
    "handmade-sinfo-v0.0.39.json": ("nodes", "sinfo-json", 7, 0),
}

#: Captures that are not job or node reports (configs, REST answers, text tables, stderr).
NOT_REPORTS = {
    "README-samples.md",
    "commands-rc.txt",
    "gres-conf.txt",
    "job-ids.txt",
    "job-stdout.txt",
    "rest-bad-token-500.txt",
    "rest-diag.json",
    "rest-job-delete.json",
    "rest-job-submit.json",
    "rest-no-token-401.txt",
    "rest-openapi-v3.json",
    "rest-partitions.json",
    "rest-ping.json",
    "rest-slurmdb-accounts.json",
    "rest-slurmdb-associations.json",
    "rest-slurmdb-qos.json",
    "rest-slurmdb-tres.json",
    "rest-slurmdb-users.json",
    "sacct-default.txt",
    "sacctmgr-account.json.stderr",
    "sacctmgr-assoc.psv",
    "sacctmgr-user.json.stderr",
    "scontrol-show-config.txt",
    "scontrol-show-job-after-oneliner.txt",
    "scontrol-show-job-after.json.stderr",
    "scontrol-show-job-running-detail.txt",
    "scontrol-show-job-running-oneliner.txt",
    "scontrol-show-job-running.json.stderr",
    "scontrol-show-node.json.stderr",
    "scontrol-show-partition-oneliner.txt",
    "scontrol-show-partition.json.stderr",
    "sdiag.txt",
    "sinfo-Nel.txt",
    "sinfo-default.txt",
    "sinfo-future.txt.stderr",
    "slurm-conf.txt",
    "sprio.txt",
    "squeue-default.txt",
    "squeue-running-all-fields.txt",
    "squeue-running.txt",
    "sshare.txt",
    "sstat-running.json.stderr",
    "sstat-running.psv",
}


def _parse(name: str, **kwargs: object) -> tuple[list[Job | Node], list[SlurmParseError]]:
    kind = REPORTS[name][0]
    errors: list[SlurmParseError] = []
    parse = parse_jobs if kind == "jobs" else parse_nodes
    with (FIXTURES / name).open("rb") as fh:
        records = list(
            parse(fh, fmt="auto", cluster_name=CLUSTER, source=name, errors=errors, **kwargs)
        )
    return records, errors


def _jobs(name: str) -> dict[int, Job]:
    records, errors = _parse(name)
    assert not errors, [str(e) for e in errors]
    return {job.job_id: job for job in records}  # type: ignore[union-attr]


def _nodes(name: str) -> dict[str, Node]:
    records, errors = _parse(name)
    assert not errors, [str(e) for e in errors]
    return {node.name: node for node in records}  # type: ignore[union-attr]


def test_every_fixture_is_classified() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.is_file()}
    assert files == set(REPORTS) | NOT_REPORTS


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_report_parses_with_the_expected_counts(name: str) -> None:
    kind, fmt, expected_records, expected_errors = REPORTS[name]
    assert detect_format((FIXTURES / name).read_bytes()[:4096]) == fmt

    records, errors = _parse(name)

    assert len(records) == expected_records
    assert len(errors) == expected_errors, [str(e) for e in errors]
    for err in errors:
        assert err.source == name and err.line_no is not None and err.reason
        assert str(err).startswith(f"{name}:{err.line_no}: ")
    for record in records:
        assert record.cluster_name == CLUSTER
        document = record.to_dict()
        assert tuple(document) == (JOB_FIELDS if kind == "jobs" else NODE_FIELDS)
        if kind == "jobs":
            assert record.job_state in JOB_STATES  # type: ignore[union-attr]
            for moment in (record.submit_time, record.start_time, record.end_time):  # type: ignore[union-attr]
                assert moment is None or moment.tzinfo is not None
            for ratio in (record.cpu_efficiency, record.mem_efficiency):  # type: ignore[union-attr]
                assert ratio is None or 0.0 <= ratio <= 1.0


@pytest.mark.parametrize("name", sorted(NOT_REPORTS))
def test_other_captures_are_refused_cleanly(name: str) -> None:
    errors: list[SlurmParseError] = []
    try:
        with (FIXTURES / name).open("rb") as fh:
            records = list(parse_jobs(fh, fmt="auto", cluster_name=CLUSTER, errors=errors))
    except SlurmParseError:
        return  # not recognized: refused before parsing
    assert len(records) <= 1 or errors  # REST answers without jobs give an error or nothing


# --------------------------------------------------------------------------- jobs, field by field


@pytest.mark.parametrize(
    "name",
    ["sacct-wide.psv", "sacct-all.psv", "handmade-sacct-special.usv", "handmade-sacct-pipes.psv"],
)
def test_sacct_psv_facts(name: str) -> None:
    jobs = _jobs(name)

    assert jobs[4].job_state == "FAILED" and jobs[4].exit_code == 3 and jobs[4].signal is None
    assert jobs[2].job_state == "CANCELLED" and jobs[2].cancelled_by == 1002
    assert jobs[11].job_state == "CANCELLED" and jobs[11].cancelled_by == 0
    assert jobs[1].job_state == "TIMEOUT" and jobs[1].signal == 15  # from its batch step 0:15
    assert jobs[1].time_limit == 1 and jobs[7].time_limit == 2880
    tasks = {jobs[i].array_task_id: i for i in (12, 13, 5)}
    assert tasks == {1: 12, 2: 13, 3: 5}
    assert {jobs[i].array_job_id for i in (12, 13, 5)} == {5}
    assert jobs[3].array_job_id is None and jobs[3].het_job_id is None
    steps = {s["step_id"]: s for s in jobs[6].steps}
    assert set(steps) == {"batch", "0", "1", "2"}
    assert steps["2"]["state"] == "FAILED" and steps["2"]["exit_code"] == 1
    assert steps["2"]["name"] == "false"
    assert jobs[6].exit_code == 0  # the batch script's; the failed step is in steps
    assert jobs[7].num_gpus == 1 and jobs[3].num_gpus == 0
    assert jobs[11].mem_mb == 20480 and jobs[11].num_cpus == 2
    assert jobs[3].tres_allocated == {"billing": 1, "cpu": 1, "mem": 256, "node": 1}
    assert jobs[1].start_time == datetime(2026, 11, 21, 10, 12, 14, tzinfo=UTC)
    assert jobs[1].mem_efficiency == pytest.approx(3324 / 1024 / 256, rel=1e-3)
    assert jobs[6].cpu_efficiency == pytest.approx(0.046 / 2)
    assert jobs[3].working_directory == "/tmp" and jobs[3].nodes == "node001"


def test_special_cases_psv() -> None:
    jobs = _jobs("handmade-sacct-special.usv")

    assert jobs[3].name == "a|b \"quoted\" 'single'"
    assert jobs[4].name == "<script>alert(1)</script>&amp;"
    assert jobs[8].name == "café-日本語-ñ"
    assert jobs[3].comment == "see <b>notes</b> | “ok”"
    assert jobs[7].num_gpus == 1 and jobs[7].gpu_type == "fake"
    pending = jobs[20]
    assert (pending.array_job_id, pending.array_task_id) == (20, None)
    assert pending.job_state == "PENDING" and pending.start_time is None and pending.nodes is None
    assert pending.exit_code is None and pending.end_time is None
    het = [jobs[21], jobs[22]]
    assert [(j.het_job_id, j.het_job_offset) for j in het] == [(21, 0), (21, 1)]
    assert [len(j.steps) for j in het] == [1, 1]
    assert jobs[23].job_state == "OUT_OF_MEMORY" and jobs[23].mem_efficiency == 1.0
    assert jobs[24].job_state == "RUNNING" and jobs[24].exit_code is None
    assert jobs[24].end_time is None and jobs[24].cpu_efficiency is None


def test_local_time_zone_is_converted_to_utc() -> None:
    records, _ = _parse("sacct-wide.psv", timezone="America/Montreal")
    job = next(j for j in records if j.job_id == 1)  # type: ignore[union-attr]

    assert job.start_time == datetime(2026, 11, 21, 15, 12, 14, tzinfo=UTC)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name", ["sacct.json", "handmade-sacct-special.json", "handmade-sacct-v0.0.39.json"]
)
def test_sacct_json_facts(name: str) -> None:
    jobs = _jobs(name)

    assert jobs[1].job_state == "TIMEOUT" and jobs[1].signal == 15
    assert jobs[2].job_state == "CANCELLED" and jobs[2].signal == 15
    assert jobs[11].cancelled_by == 0  # kill_request_user "root"
    assert {jobs[i].array_task_id for i in (12, 13, 5)} == {1, 2, 3}
    steps = {s["step_id"]: s for s in jobs[6].steps}
    assert set(steps) == {"batch", "0", "1", "2"}
    assert steps["2"]["state"] == "FAILED"
    assert jobs[7].num_gpus == 1 and jobs[7].time_limit == 2880
    assert jobs[11].mem_mb == 20480
    assert jobs[1].start_time == datetime.fromtimestamp(1795255934, UTC)
    assert jobs[1].mem_efficiency == pytest.approx(3403776 / 1048576 / 256, rel=1e-3)


def test_sacct_json_22_05_exit_codes_are_unknown_not_zero() -> None:
    jobs = _jobs("sacct.json")
    assert jobs[4].job_state == "FAILED" and jobs[4].exit_code is None
    assert jobs[3].exit_code == 0  # COMPLETED: 0 is right

    newer = _jobs("handmade-sacct-v0.0.39.json")  # 23.02 reports them correctly
    assert newer[4].exit_code == 3
    assert {s["step_id"]: s["exit_code"] for s in newer[6].steps}["2"] == 1


def test_special_cases_json() -> None:
    jobs = _jobs("handmade-sacct-special.json")

    assert jobs[3].name == "a|b \"quoted\" 'single'"
    assert jobs[8].name == "café-日本語-ñ"
    assert (jobs[20].array_job_id, jobs[20].array_task_id, jobs[20].job_state) == (
        20,
        None,
        "PENDING",
    )
    assert [(jobs[i].het_job_id, jobs[i].het_job_offset) for i in (21, 22)] == [(21, 0), (21, 1)]


def test_squeue_json_decodes_wait_statuses() -> None:
    jobs = _jobs("squeue-after.json")

    assert jobs[4].exit_code == 3 and jobs[4].signal is None  # 768
    assert jobs[1].job_state == "TIMEOUT" and jobs[1].signal == 15  # 15
    assert jobs[7].num_gpus == 1 and jobs[7].gpu_type == "fake"
    assert (jobs[12].array_job_id, jobs[12].array_task_id) == (5, 1)
    assert {9, 10} <= set(jobs)  # nothing filtered


def test_squeue_running_snapshot() -> None:
    jobs = _jobs("squeue-running.json")

    assert jobs[1].job_state == "RUNNING" and jobs[1].end_time is None and jobs[1].exit_code is None
    assert (jobs[5].array_job_id, jobs[5].array_task_id, jobs[5].job_state) == (5, None, "PENDING")
    assert jobs[4].start_time is None


# --------------------------------------------------------------------------- nodes


@pytest.mark.parametrize(
    "name",
    [
        "sinfo.json",
        "sinfo-N-wide.txt",
        "scontrol-show-node-oneliner.txt",
        "scontrol-show-node.txt",
        "handmade-sinfo-v0.0.39.json",
    ],
)
def test_nodes_read_the_same_in_every_format(name: str) -> None:
    nodes = _nodes(name)

    assert set(nodes) == {
        "bigmem001",
        "gpu001",
        "gpu002",
        "node001",
        "node002",
        "node003",
        "node004",
    }
    big = nodes["bigmem001"]
    assert big.state == "drained" and big.state_flags == ["DRAIN", "NOT_RESPONDING"]
    assert big.reason == "maintenance: firmware upgrade"
    assert big.real_memory_mb == 1024000 and big.cpus == 64
    assert big.cpu_load is None  # sentinel 4294967294 / N/A
    assert nodes["node002"].reason == "hardware failure: DIMM B2"
    assert nodes["node002"].state == "down"
    node1 = nodes["node001"]
    assert node1.state == "idle" and node1.state_flags == [] and node1.reason is None
    assert node1.partitions == ["debug", "gpu", "long"]
    assert (node1.num_gpus, node1.gpu_type) == (2, "fake")
    assert node1.cpu_load == pytest.approx(1.38)
    assert nodes["gpu001"].num_gpus == 4 and nodes["gpu001"].gpu_type == "a100"


def test_scontrol_odd_reasons() -> None:
    nodes = _nodes("handmade-scontrol-node-odd.txt")

    assert nodes["node002"].reason == "hardware failure: DIMM B2"
    assert nodes["node002"].reason_time == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    odd = nodes["node005"]
    assert odd.reason == 'rma gpu=1 key=value "quoted" é'
    assert odd.state == "draining" and odd.state_flags == ["DRAIN"]
    assert odd.alloc_gpus == 1 and odd.alloc_cpus == 1
