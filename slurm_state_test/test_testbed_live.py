"""Live checks of the Slurm testbed (scripts/slurm_testbed.sh): real jobs, real sacct.

Skipped (by the ``slurm_testbed`` fixture) when the testbed is not up.
"""

from __future__ import annotations

import uuid

import pytest

from test_common.slurm import (
    DRAINED_NODE,
    DRAINED_REASON,
    JOBS_DIR,
    NODE,
    sinfo_nodes,
    slurm_testbed,  # noqa: F401  (the fixture, used through pytestmark)
    submit,
    wait_for_final_state,
)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_testbed")]

JOB_TIMEOUT_S = 60.0


def test_failed_job_has_state_failed_and_exit_code() -> None:
    job_id = submit(
        ["--chdir=/tmp", "--job-name=cw-testbed-fail", "--output=/dev/null", "--wrap", "exit 3"],
        user="alice",
    )

    record = wait_for_final_state(job_id, timeout=JOB_TIMEOUT_S)

    assert record["State"] == "FAILED"
    assert record["ExitCode"] == "3:0"
    assert record["User"] == "alice"
    assert record["Account"] == "research"


def test_completed_job_writes_its_output() -> None:
    name = f"cw-testbed-ok-{uuid.uuid4().hex[:8]}"
    output = JOBS_DIR / f"{name}.out"
    try:
        job_id = submit(
            [
                "--chdir=/tmp",
                f"--job-name={name}",
                f"--output={output}",
                "--wrap",
                f"echo {name} ran as $(id -un) in job $SLURM_JOB_ID",
            ],
            user="bob",
        )

        record = wait_for_final_state(job_id, timeout=JOB_TIMEOUT_S)

        assert record["State"] == "COMPLETED"
        assert record["ExitCode"] == "0:0"
        assert record["JobName"] == name
        assert output.read_text() == f"{name} ran as bob in job {job_id}\n"
    finally:
        output.unlink(missing_ok=True)


def test_sinfo_shows_the_real_node_and_the_drained_one() -> None:
    nodes = sinfo_nodes()

    assert nodes[NODE]["state"].rstrip("*") in {"idle", "mixed", "allocated", "completing"}
    assert nodes[DRAINED_NODE]["state"].rstrip("*") in {"drained", "draining"}
    assert nodes[DRAINED_NODE]["reason"] == DRAINED_REASON
