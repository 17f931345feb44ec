"""Render schema Jobs as Slurm 22.05 prints them: ``sacct --parsable2`` and ``sacct --json``.

The inverse of the parsers, for the benchmark and for tests that need a report
of known content (a scrape "after a 2-hour gap", malformed lines among good
ones). Times are written in UTC (parse with ``timezone="UTC"``). The JSON
follows the ``openapi/dbv0.0.38`` shape of the real 22.05 output, including
its bulk (steps with TRES lists), so a rendered report has a realistic size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from clockwork_core.schema import Job

_TIME = "%Y-%m-%dT%H:%M:%S"
_TRES_IDS = {"cpu": 1, "mem": 2, "energy": 3, "node": 4, "billing": 5, "gres/gpu": 1001}


def _t(value: datetime | None, missing: str = "Unknown") -> str:
    return value.strftime(_TIME) if value else missing


def _tres(tres: dict[str, Any]) -> str:
    parts = []
    for key, value in tres.items():
        parts.append(f"{key}={value}M" if key == "mem" else f"{key}={value}")
    return ",".join(parts)


def _job_id_text(job: Job) -> str:
    if job.array_job_id is not None and job.array_task_id is not None:
        return f"{job.array_job_id}_{job.array_task_id}"
    if job.het_job_id is not None and job.het_job_offset is not None:
        return f"{job.het_job_id}+{job.het_job_offset}"
    return str(job.job_id)


def _elapsed(job: Job) -> int:
    if job.start_time is None:
        return 0
    end = job.end_time or job.start_time
    return max(0, int((end - job.start_time).total_seconds()))


def psv_lines(
    jobs: Iterable[Job], fields: tuple[str, ...], delimiter: str, *, header: bool = True
) -> Iterator[str]:
    """``sacct --parsable2 --delimiter=D --format=FIELDS``: a header, then job and step lines."""
    if header:
        yield delimiter.join(fields) + "\n"
    for job in jobs:
        state = job.job_state
        if state == "CANCELLED" and job.cancelled_by is not None:
            state = f"CANCELLED by {job.cancelled_by}"
        exit_text = f"{job.exit_code or 0}:{job.signal or 0}"
        jid = _job_id_text(job)
        values = {
            "JobID": jid,
            "JobIDRaw": str(job.job_id),
            "JobName": job.name or "",
            "User": job.username or "",
            "Account": job.account or "",
            "Partition": job.partition or "",
            "QOS": job.qos or "normal",
            "State": state,
            "ExitCode": exit_text,
            "Submit": _t(job.submit_time),
            "Start": _t(job.start_time),
            "End": _t(job.end_time),
            "ElapsedRaw": str(_elapsed(job)),
            "TimelimitRaw": str(job.time_limit) if job.time_limit is not None else "UNLIMITED",
            "NNodes": str(job.num_nodes or 1),
            "NCPUS": str(job.num_cpus or 1),
            "NodeList": job.nodes or "None assigned",
            "ReqMem": f"{job.mem_mb}M" if job.mem_mb else "",
            "ReqTRES": _tres(job.tres_requested),
            "AllocTRES": _tres(job.tres_allocated),
            "MaxRSS": "",
            "TotalCPU": "00:00:00",
            "WorkDir": job.working_directory or "",
            "Comment": job.comment or "",
        }
        yield delimiter.join(values.get(f, "") for f in fields) + "\n"
        for step in job.steps:
            sid = step.get("step_id")
            step_values = {
                "JobID": f"{jid}.{sid}",
                "JobIDRaw": f"{job.job_id}.{sid}",
                "JobName": str(step.get("name") or sid),
                "Account": job.account or "",
                "State": str(step.get("state") or job.job_state),
                "ExitCode": f"{step.get('exit_code') or 0}:{step.get('signal') or 0}",
                "Submit": _t(job.start_time),
                "Start": _t(job.start_time),
                "End": _t(job.end_time),
                "ElapsedRaw": str(_elapsed(job)),
                "NNodes": str(job.num_nodes or 1),
                "NCPUS": str(job.num_cpus or 1),
                "NodeList": job.nodes or "",
                "AllocTRES": _tres({k: v for k, v in job.tres_allocated.items() if k != "billing"}),
                "MaxRSS": "3324K",
                "TotalCPU": "00:00.003",
            }
            yield delimiter.join(step_values.get(f, "") for f in fields) + "\n"


def _tres_list(tres: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in tres.items():
        kind, _, name = key.partition("/")
        if kind == "gres":
            out.append(
                {"type": "gres", "name": name, "id": _TRES_IDS.get(key, 1002), "count": value}
            )
        else:
            out.append({"type": key, "name": None, "id": _TRES_IDS.get(key, 9), "count": value})
    return out


def _epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def _usage() -> dict[str, Any]:
    energy = [{"type": "energy", "name": None, "id": 3, "count": 0}]
    return {"max": [], "min": [], "average": energy, "total": energy}


def json_job(job: Job) -> dict[str, Any]:
    """One element of ``.jobs[]`` of ``sacct --json`` (22.05, dbv0.0.38)."""
    ok = {"status": "SUCCESS", "return_code": 0}
    if job.signal:
        exit_code: dict[str, Any] = {
            "status": "SIGNALED",
            "return_code": 0,
            "signal": {"signal_id": job.signal, "name": "TERM"},
        }
    else:
        exit_code = ok  # 22.05 reports every exit code as 0 in JSON
    times = {
        "elapsed": _elapsed(job),
        "eligible": _epoch(job.submit_time),
        "end": _epoch(job.end_time),
        "start": _epoch(job.start_time),
        "submission": _epoch(job.submit_time),
        "suspended": 0,
        "system": {"seconds": 0, "microseconds": 0},
        "limit": job.time_limit,
        "total": {"seconds": 0, "microseconds": 0},
        "user": {"seconds": 0, "microseconds": 0},
    }
    steps = []
    for step in job.steps:
        steps.append(
            {
                "nodes": {
                    "list": [job.nodes or ""],
                    "count": job.num_nodes or 1,
                    "range": job.nodes,
                },
                "tres": {
                    "requested": _usage(),
                    "consumed": _usage(),
                    "allocated": _tres_list(
                        {k: v for k, v in job.tres_allocated.items() if k != "billing"}
                    ),
                },
                "time": {
                    "elapsed": _elapsed(job),
                    "end": _epoch(job.end_time),
                    "start": _epoch(job.start_time),
                    "suspended": 0,
                    "system": {"seconds": 0, "microseconds": 2283},
                    "total": {"seconds": 0, "microseconds": 2591},
                    "user": {"seconds": 0, "microseconds": 308},
                },
                "exit_code": ok,
                "tasks": {"count": 1},
                "pid": None,
                "CPU": {"requested_frequency": {"min": 0, "max": 0}, "governor": []},
                "kill_request_user": None,
                "state": str(step.get("state") or job.job_state),
                "statistics": {"CPU": {"actual_frequency": 0}, "energy": {"consumed": 0}},
                "step": {
                    "job_id": job.job_id,
                    "het": {"component": None},
                    "id": str(step.get("step_id")),
                    "name": str(step.get("name") or step.get("step_id")),
                },
                "task": {"distribution": "Unknown"},
            }
        )
    return {
        "account": job.account,
        "comment": {"administrator": None, "job": job.comment, "system": None},
        "allocation_nodes": job.num_nodes or 0,
        "array": {
            "job_id": job.array_job_id or 0,
            "limits": {"max": {"running": {"tasks": 0}}},
            "task": None,
            "task_id": job.array_task_id,
        },
        "association": {
            "account": job.account,
            "cluster": job.cluster_name,
            "partition": None,
            "user": job.username,
        },
        "cluster": job.cluster_name,
        "constraints": "",
        "container": None,
        "derived_exit_code": ok,
        "time": times,
        "exit_code": exit_code,
        "flags": ["CLEAR_SCHEDULING", "STARTED_ON_SCHEDULE"],
        "group": job.username,
        "het": {"job_id": job.het_job_id or 0, "job_offset": job.het_job_offset},
        "job_id": job.job_id,
        "name": job.name,
        "mcs": {"label": ""},
        "nodes": job.nodes or "None assigned",
        "partition": job.partition,
        "priority": 1000,
        "qos": job.qos or "normal",
        "required": {"CPUs": job.num_cpus or 1, "memory": job.mem_mb or 0},
        "kill_request_user": None,
        "reservation": {"id": 0, "name": 0},
        "state": {"current": job.job_state, "reason": "None"},
        "steps": steps,
        "tres": {
            "allocated": _tres_list(job.tres_allocated),
            "requested": _tres_list(job.tres_requested),
        },
        "user": job.username,
        "wckey": {"wckey": "", "flags": []},
        "working_directory": job.working_directory,
    }


def json_chunks(jobs: Iterable[Job], *, indent: int | None = 2) -> Iterator[str]:
    """The whole ``sacct --json`` document, in pieces (never all in memory)."""
    meta = {
        "plugin": {"type": "openapi/dbv0.0.38", "name": "Slurm OpenAPI DB v0.0.38"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"},
    }
    yield '{\n  "meta": ' + json.dumps(meta) + ',\n  "errors": [],\n  "jobs": [\n'
    first = True
    for job in jobs:
        text = json.dumps(json_job(job), indent=indent, default=str)
        yield ("" if first else ",\n") + text
        first = False
    yield "\n  ]\n}\n"
