"""The one record schema every component shares.

Field names follow PySlurm, as the original Clockwork's scrapers did. Every
parser, whatever its input format or Slurm version, produces these records;
the store turns them into MongoDB documents shaped ``{"slurm": ..., "cw": ...}``
where ``slurm`` holds exactly the fields below and ``cw`` holds what Clockwork
adds (first/last seen, the mapped user, ...). The web app, the REST API and the
client rely on these names: change them only with all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# --------------------------------------------------------------------------- states

#: Every base job state Slurm reports (``squeue``/``sacct``), upper case.
JOB_STATES: frozenset[str] = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "COMPLETING",
        "CONFIGURING",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PENDING",
        "PREEMPTED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "RESV_DEL_HOLD",
        "REVOKED",
        "RUNNING",
        "SIGNALING",
        "SPECIAL_EXIT",
        "STAGE_OUT",
        "STOPPED",
        "SUSPENDED",
        "TIMEOUT",
    }
)

#: The four buckets users filter on, each a set of base states.
STATE_BUCKETS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}),
    "RUNNING": frozenset(
        {
            "RUNNING",
            "COMPLETING",
            "CONFIGURING",
            "RESIZING",
            "SIGNALING",
            "STAGE_OUT",
            "STOPPED",
            "SUSPENDED",
        }
    ),
    "COMPLETED": frozenset({"COMPLETED"}),
    "FAILED": frozenset(
        {
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
        }
    ),
}

#: States after which Slurm will not change the job any more.
FINAL_STATES: frozenset[str] = STATE_BUCKETS["COMPLETED"] | STATE_BUCKETS["FAILED"]

#: Base node states (``sinfo``/``scontrol``), lower case as Slurm prints them.
NODE_STATES: frozenset[str] = frozenset(
    {
        "allocated",
        "completing",
        "down",
        "drained",
        "draining",
        "fail",
        "failing",
        "future",
        "idle",
        "inval",
        "maint",
        "mixed",
        "perfctrs",
        "planned",
        "power_down",
        "powered_down",
        "powering_down",
        "powering_up",
        "reboot_issued",
        "reboot_requested",
        "reserved",
        "unknown",
    }
)


def state_bucket(job_state: str) -> str:
    """The bucket (PENDING, RUNNING, COMPLETED or FAILED) of a base job state."""
    for bucket, states in STATE_BUCKETS.items():
        if job_state in states:
            return bucket
    return "RUNNING"


def expand_states(names: list[str]) -> list[str]:
    """Turn a mix of base states and bucket names into base states, in order.

    Raises ValueError naming the first unknown name.
    """
    out: list[str] = []
    for raw in names:
        name = raw.strip().upper()
        states = STATE_BUCKETS.get(name)
        if states is None:
            if name not in JOB_STATES:
                raise ValueError(f"unknown job state {raw!r}")
            states = frozenset({name})
        out.extend(s for s in sorted(states) if s not in out)
    return out


# --------------------------------------------------------------------------- records


@dataclass(slots=True, kw_only=True)
class Job:
    """One Slurm job (an array task and a het-job component each count as one)."""

    cluster_name: str
    job_id: int
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_job_offset: int | None = None
    name: str | None = None
    username: str | None = None
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    job_state: str = "PENDING"
    cancelled_by: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_limit: int | None = None
    nodes: str | None = None
    num_nodes: int | None = None
    num_cpus: int | None = None
    mem_mb: int | None = None
    num_gpus: int | None = None
    gpu_type: str | None = None
    tres_requested: dict[str, Any] = field(default_factory=dict)
    tres_allocated: dict[str, Any] = field(default_factory=dict)
    working_directory: str | None = None
    comment: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    cpu_efficiency: float | None = None
    mem_efficiency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``slurm`` part of a job document."""
        return {name: getattr(self, name) for name in JOB_FIELDS}


@dataclass(slots=True, kw_only=True)
class Node:
    """One Slurm node as the scheduler last reported it."""

    cluster_name: str
    name: str
    state: str = "unknown"
    state_flags: list[str] = field(default_factory=list)
    reason: str | None = None
    reason_time: datetime | None = None
    partitions: list[str] = field(default_factory=list)
    cpus: int | None = None
    alloc_cpus: int | None = None
    real_memory_mb: int | None = None
    alloc_memory_mb: int | None = None
    gres: str | None = None
    gpu_type: str | None = None
    num_gpus: int | None = None
    alloc_gpus: int | None = None
    features: list[str] = field(default_factory=list)
    cpu_load: float | None = None
    last_busy: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``slurm`` part of a node document."""
        return {name: getattr(self, name) for name in NODE_FIELDS}


JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Job))
NODE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Node))

#: The natural keys, as document paths; the unique indexes are built on them.
JOB_KEY: tuple[str, str] = ("slurm.cluster_name", "slurm.job_id")
NODE_KEY: tuple[str, str] = ("slurm.cluster_name", "slurm.name")


def job_from_dict(data: dict[str, Any]) -> Job:
    """Rebuild a Job from the ``slurm`` part of a stored document."""
    return Job(**{k: v for k, v in data.items() if k in JOB_FIELDS})


def node_from_dict(data: dict[str, Any]) -> Node:
    """Rebuild a Node from the ``slurm`` part of a stored document."""
    return Node(**{k: v for k, v in data.items() if k in NODE_FIELDS})


# --------------------------------------------------------------------------- documents


def job_document(job: Job, *, user: str | None, seen: datetime, scrape_id: str) -> dict[str, Any]:
    """The stored form of a job seen for the first time.

    ``cw.user`` is the Clockwork user (email) the job's Slurm username maps to on
    its cluster; ``cw.node_names`` is the expanded node list, so a node's page
    can find its jobs through an index; ``cw.bucket`` is the state's bucket, so
    that "running jobs" is one indexed equality rather than eight states.
    """
    from clockwork_core.hostlist import HostlistError, expand

    try:
        node_names = expand(job.nodes)
    except HostlistError:
        node_names = []
    return {
        "slurm": job.to_dict(),
        "cw": {
            "user": user,
            "first_seen": seen,
            "last_seen": seen,
            "last_scrape_id": scrape_id,
            "node_names": node_names,
            "bucket": state_bucket(job.job_state),
        },
    }


def node_document(node: Node, *, seen: datetime, scrape_id: str) -> dict[str, Any]:
    """The stored form of a node."""
    return {
        "slurm": node.to_dict(),
        "cw": {"first_seen": seen, "last_seen": seen, "last_scrape_id": scrape_id},
    }
