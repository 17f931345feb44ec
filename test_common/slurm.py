"""Helpers and the pytest fixture for tests against the live Slurm testbed.

The testbed is a real single-machine Slurm 22.05 cluster brought up by
``scripts/slurm_testbed.sh up`` (``test.sh`` and ``dev.sh`` start it before
pytest). The ``slurm_testbed`` fixture only checks that it is up and skips the
test otherwise; it never starts anything.

Use it from a test module::

    from test_common.slurm import slurm_testbed  # noqa: F401  (the fixture)
    from test_common.slurm import submit, wait_for_final_state

    pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_testbed")]

    def test_x() -> None:
        job_id = submit(["--chdir=/tmp", "--wrap", "true"], user="alice")
        assert wait_for_final_state(job_id, timeout=60)["State"] == "COMPLETED"

(Requesting ``slurm_testbed`` as a parameter works too, and gives a
``SlurmTestbed``, but ruff then flags the import with F811.) Every command
runs through ``subprocess`` with an argument list and a timeout.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTBED_SCRIPT = REPO_ROOT / "scripts" / "slurm_testbed.sh"

# what scripts/slurm_testbed.sh sets up (its defaults)
CLUSTER = "testcluster"
NODE = "node001"
USERS = {"alice": "research", "bob": "physics"}
JOBS_DIR = Path("/var/spool/slurm-ci/jobs")  # mode 1777: any job may write here
DRAINED_NODE = "bigmem001"
DRAINED_REASON = "maintenance: firmware upgrade"

#: sacct states after which a job never changes again ("CANCELLED by 0" -> CANCELLED)
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)

#: sacct fields returned by ``wait_for_final_state`` (JobName last: it may contain "|")
SACCT_FIELDS = (
    "JobID",
    "JobIDRaw",
    "User",
    "Account",
    "Partition",
    "State",
    "ExitCode",
    "DerivedExitCode",
    "Submit",
    "Start",
    "End",
    "Elapsed",
    "NodeList",
    "JobName",
)

COMMAND_TIMEOUT_S = 30.0
STATUS_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.5


class SlurmCommandError(RuntimeError):
    """A Slurm command exited non-zero."""


@dataclass(frozen=True)
class SlurmTestbed:
    """The running testbed, as seen by ``scripts/slurm_testbed.sh status``."""

    cluster: str
    node: str
    jobs_dir: Path
    status: str


def run(args: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a command and return its stdout; raise SlurmCommandError if it fails."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SlurmCommandError(
            f"{shlex.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


def as_user(args: list[str], user: str | None) -> list[str]:
    """Prefix ``args`` with ``runuser -u USER --`` (needs root) when ``user`` is given."""
    return ["runuser", "-u", user, "--", *args] if user else list(args)


def submit(args: list[str], user: str | None = None) -> int:
    """``sbatch --parsable ARGS`` (as ``user`` if given) and return the job id.

    Pass ``--chdir`` (or ``--output``) to a directory the user can write, or the
    job fails with 0:53 trying to open its stdout file.
    """
    out = run(as_user(["sbatch", "--parsable", *args], user)).strip()
    # "123" or, with a federation/multi-cluster, "123;cluster"
    return int(out.splitlines()[-1].split(";", 1)[0])


def job_record(job_id: int) -> dict[str, str] | None:
    """The sacct line of the job itself (not its steps), or None if not yet there.

    With an external MariaDB that outlived a ``down --purge``, job ids can repeat
    in the accounting DB; the last (most recent) line wins.
    """
    out = run(
        [
            "sacct",
            "-j",
            str(job_id),
            "--parsable2",
            "--noheader",
            f"--format={','.join(SACCT_FIELDS)}",
        ]
    )
    records = [
        dict(zip(SACCT_FIELDS, line.split("|", len(SACCT_FIELDS) - 1), strict=True))
        for line in out.splitlines()
        if line.count("|") >= len(SACCT_FIELDS) - 1
    ]
    mine = [r for r in records if r["JobID"] == str(job_id)]
    return mine[-1] if mine else None


def is_final(state: str) -> bool:
    """True for a final sacct State such as ``COMPLETED`` or ``CANCELLED by 1002``."""
    return state.split(" ", 1)[0] in FINAL_STATES


def is_placeholder(record: dict[str, str]) -> bool:
    """True for the provisional record slurmdbd 22.05 shows for a few seconds.

    When the step/end messages of a short job reach slurmdbd before the job
    start message, slurmdbd inserts a placeholder job: JobName ``allocation``,
    empty Partition, ReqMem ``16?``, QOS ``Unknown``, no WorkDir. State and
    ExitCode are already final; the other fields are filled ~1-5 s later. A real
    job always has a partition.
    """
    return record["Partition"] == ""


def wait_for_final_state(job_id: int, timeout: float = 60.0) -> dict[str, str]:
    """Poll sacct until the job is in a final state; return its fields (SACCT_FIELDS).

    Also waits until slurmdbd replaced its placeholder record (see
    ``is_placeholder``), so every returned field is the real one.
    Raises TimeoutError (with the last state seen) when ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        record = job_record(job_id)
        if record is not None and is_final(record["State"]) and not is_placeholder(record):
            return record
        if time.monotonic() >= deadline:
            seen = "not in sacct"
            if record is not None:
                seen = record["State"] + (" (placeholder record)" if is_placeholder(record) else "")
            raise TimeoutError(f"job {job_id} not in a final state after {timeout:g}s ({seen})")
        time.sleep(POLL_INTERVAL_S)


def sinfo_nodes() -> dict[str, dict[str, str]]:
    """Node name -> {"state", "reason", "partitions"} from ``sinfo -N``.

    The state keeps sinfo's suffixes (``drained*`` = not responding).
    """
    out = run(["sinfo", "-N", "--noheader", "--format=%N|%P|%T|%E"])
    nodes: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        name, partition, state, reason = line.split("|", 3)
        node = nodes.setdefault(name, {"state": state, "reason": reason, "partitions": ""})
        node["partitions"] = ",".join(filter(None, [node["partitions"], partition]))
    return nodes


def unavailable_reason() -> str | None:
    """None if the testbed is up, else a one-line reason why it cannot be used."""
    if not TESTBED_SCRIPT.is_file():
        return f"{TESTBED_SCRIPT} not found"
    try:
        proc = subprocess.run(
            ["bash", str(TESTBED_SCRIPT), "status"],
            capture_output=True,
            text=True,
            timeout=STATUS_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/slurm_testbed.sh status failed: {exc}"
    if proc.returncode == 0:
        return None
    if proc.returncode == 2:  # cannot run here (not root, not Debian)
        lines = proc.stderr.strip().splitlines()
        return lines[-1] if lines else "Slurm testbed cannot run here"
    down = [
        " ".join(line.split())
        for line in proc.stdout.splitlines()
        if line.strip() and "running" not in line and "disabled" not in line
    ]
    return (
        f"Slurm testbed is not up ({'; '.join(down) or f'status exit {proc.returncode}'}); "
        "start it with: sudo scripts/slurm_testbed.sh up"
    )


@pytest.fixture(scope="session")
def slurm_testbed() -> SlurmTestbed:
    """The running testbed; skips the test when it is not up (never starts it)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    status = run(["bash", str(TESTBED_SCRIPT), "status"], timeout=STATUS_TIMEOUT_S)
    return SlurmTestbed(cluster=CLUSTER, node=NODE, jobs_dir=JOBS_DIR, status=status)
