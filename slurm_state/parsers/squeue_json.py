"""``squeue --json`` (schema v0.0.38 and later): the live queue as schema Jobs.

22.05 facts: every filter is ignored (finished jobs still in memory are
listed too: the caller filters); ``exit_code``/``derived_exit_code`` are raw
wait statuses (768 = exit 3, 15 = SIGTERM); times are epoch seconds; unset
numbers are ``null`` (0.0.38) or ``{"set": false, ...}`` (0.0.39+).

GPUs come from ``tres_alloc_str`` (``tres_req_str`` while pending). Slurm's
accounting often records ``gres/gpu`` without the type; the type is then taken
from the allocation detail (``gres_detail``), else from ``tres_per_node`` when
the job did get GPUs. Counts never come from the per-node request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clockwork_core.schema import FINAL_STATES, STATE_BUCKETS, Job

from ._errors import SlurmParseError, SqueueParseError
from ._jobs import gpus
from .sacct_json import Adapter38, _parse_json_jobs
from .values import (
    decode_wait_status,
    from_epoch,
    gpus_from_gres,
    json_int,
    json_number,
    parse_job_state,
    parse_tres,
    text_or_none,
)


def is_squeue_job(obj: Any) -> bool:
    """Whether a decoded JSON value looks like one job of ``squeue --json``."""
    return isinstance(obj, dict) and "job_id" in obj and "job_state" in obj


def _gpu_type_fallback(raw: dict[str, Any]) -> str | None:
    for detail in raw.get("gres_detail") or []:
        _, kind = gpus_from_gres(str(detail))
        if kind:
            return kind
    for key in ("tres_per_node", "tres_per_job", "tres_per_task", "tres_per_socket"):
        value = raw.get(key)
        if value:
            _, kind = gpus_from_gres(str(value).replace("gres/", "gres:"))
            if kind:
                return kind
    return None


def squeue_job(
    raw: dict[str, Any], *, cluster_name: str, adapter: Adapter38, slurm_version: str | None
) -> Job:
    """One ``jobs[]`` element of ``squeue --json`` as a Job."""
    job_id = json_int(raw.get("job_id"))
    if job_id is None or job_id <= 0:
        raise ValueError(f"bad job_id {raw.get('job_id')!r}")
    state_value = raw.get("job_state")
    if isinstance(state_value, list):
        state_value = state_value[0] if state_value else None
    if not state_value:
        raise ValueError("job without a job_state")
    state = parse_job_state(str(state_value))[0]
    final = state in FINAL_STATES
    array_job_id = json_int(raw.get("array_job_id")) or None
    array_task_id = json_int(raw.get("array_task_id")) if array_job_id else None
    het_job_id = json_int(raw.get("het_job_id")) or None
    het_offset = json_int(raw.get("het_job_offset")) if het_job_id else None
    code, signal = decode_wait_status(json_int(raw.get("exit_code"))) if final else (None, None)
    tres_alloc = parse_tres(text_or_none(raw.get("tres_alloc_str")))
    tres_req = parse_tres(text_or_none(raw.get("tres_req_str")))
    num_gpus, gpu_type = gpus(tres_alloc, tres_req)
    if num_gpus and gpu_type is None:
        gpu_type = _gpu_type_fallback(raw)
    mem = tres_alloc.get("mem") or tres_req.get("mem")
    num_cpus = json_int(raw.get("cpus"))
    if mem is None:
        per_node = json_int(raw.get("memory_per_node"))
        per_cpu = json_int(raw.get("memory_per_cpu"))
        nodes_count = json_int(raw.get("node_count")) or 1
        mem = per_node * nodes_count if per_node else per_cpu * (num_cpus or 1) if per_cpu else None
    started = state not in STATE_BUCKETS["PENDING"]
    return Job(
        cluster_name=cluster_name,
        job_id=job_id,
        array_job_id=array_job_id,
        array_task_id=array_task_id,
        het_job_id=het_job_id,
        het_job_offset=het_offset,
        name=raw.get("name") or None,
        username=raw.get("user_name") or None,
        account=raw.get("account") or None,
        partition=raw.get("partition") or None,
        qos=raw.get("qos") or None,
        job_state=state,
        cancelled_by=None,
        exit_code=code,
        signal=signal,
        submit_time=from_epoch(raw.get("submit_time")),
        start_time=from_epoch(raw.get("start_time")) if started else None,
        end_time=from_epoch(raw.get("end_time")) if final else None,
        time_limit=json_int(raw.get("time_limit")),
        nodes=text_or_none(raw.get("nodes")),
        num_nodes=json_int(raw.get("node_count")),
        num_cpus=num_cpus,
        mem_mb=json_int(mem) if mem is not None else None,
        num_gpus=num_gpus,
        gpu_type=gpu_type,
        tres_requested=tres_req,
        tres_allocated=tres_alloc,
        working_directory=raw.get("current_working_directory") or None,
        comment=json_number(raw.get("comment")) or None,
    )


def parse_squeue_json(
    chunks: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    slurm_version: str | None = None,
) -> Iterator[Job]:
    """Jobs of a ``squeue --json`` document, one at a time (nothing filtered)."""
    yield from _parse_json_jobs(
        chunks,
        cluster_name=cluster_name,
        source=source,
        errors=errors,
        slurm_version=slurm_version,
        is_element=is_squeue_job,
        to_job=squeue_job,
        error_type=SqueueParseError,
    )
