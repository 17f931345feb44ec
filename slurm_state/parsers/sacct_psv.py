"""``sacct --parsable2``: one job line, then its step lines, as schema Jobs.

Grammar::

    report := [header] (job_line step_line*)*
    header := field (DELIM field)*          e.g. "JobID|JobIDRaw|JobName|..."
    line   := value (DELIM value)*          as many values as the header has fields
    JobID  := id ["_" (task | "[" tasks "]")] ["+" offset] ["." step]

The delimiter is ``SACCT_DELIMITER`` (the unit separator, which no job name or
path contains) in what the fetcher asks for, or ``|`` in plain ``--parsable2``
files: it is read from the header. When a ``|`` inside a free-text column
(``JobName``, ``SubmitLine``, ...) gives a line too many fields, the one column
that makes every typed column valid again takes them back; if none or several
do, the line is reported as malformed. Without a header the columns are
``SACCT_FIELDS``.

sacct prints the steps of a job right after the job's line, so a job is
yielded when the next job starts (or the input ends), with its steps folded
into ``Job.steps`` and used for the signal and the efficiencies.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

from clockwork_core.schema import FINAL_STATES, Job

from ._errors import SacctParseError, SlurmParseError
from ._jobs import finish_job, gpus, step_summary
from .values import (
    parse_duration,
    parse_exit_code,
    parse_job_state,
    parse_memory,
    parse_minutes,
    parse_timestamp,
    parse_tres,
)

#: The ``--format`` the fetcher requests (order matters only without a header).
SACCT_FIELDS: tuple[str, ...] = (
    "JobID",
    "JobIDRaw",
    "JobName",
    "User",
    "Account",
    "Partition",
    "QOS",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "NNodes",
    "NCPUS",
    "NodeList",
    "ReqMem",
    "ReqTRES",
    "AllocTRES",
    "MaxRSS",
    "TotalCPU",
    "WorkDir",
    "Comment",
)

#: ``--delimiter`` for the fetcher: ASCII unit separator, absent from names and paths.
SACCT_DELIMITER = "\x1f"

#: Columns the parser reads, in the order the row getter returns them; a column
#: a report lacks reads as "" (``Elapsed``/``Timelimit`` stand in for the Raw ones).
_WANTED: tuple[str, ...] = (
    "JobID",
    "JobIDRaw",
    "JobName",
    "User",
    "Account",
    "Partition",
    "QOS",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "Elapsed",
    "TimelimitRaw",
    "Timelimit",
    "NNodes",
    "NCPUS",
    "AllocCPUS",
    "NodeList",
    "ReqMem",
    "ReqTRES",
    "AllocTRES",
    "MaxRSS",
    "TotalCPU",
    "WorkDir",
    "Comment",
)

#: Every field name sacct 22.05 accepts in --format (to recognize a header line).
_KNOWN_FIELDS = frozenset(_WANTED) | {
    "AdminComment",
    "AssocID",
    "AveCPU",
    "AveRSS",
    "Cluster",
    "CPUTime",
    "CPUTimeRAW",
    "DerivedExitCode",
    "Eligible",
    "Flags",
    "GID",
    "Group",
    "Priority",
    "Reason",
    "ReqCPUS",
    "ReqNodes",
    "SubmitLine",
    "SystemComment",
    "TRESUsageInTot",
    "UID",
}

#: Columns where a "|" can appear (user-chosen text).
_FREE_TEXT = (
    "SubmitLine",
    "JobName",
    "WorkDir",
    "Comment",
    "AdminComment",
    "SystemComment",
    "Constraints",
    "Container",
)
_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d|Unknown|None|)"
_COUNT = r"(\d+|UNLIMITED|Partition_Limit|)"
_SPAN = r"((\d+-)?(\d+:)?\d+:\d+(\.\d+)?|UNLIMITED|Partition_Limit|INVALID|)"
#: What typed columns look like: a line re-split with a "|" in the wrong column fails these.
_SHAPES: dict[str, re.Pattern[str]] = {
    name: re.compile(f"^{pattern}$")
    for names, pattern in (
        (("JobID",), r"\d+(_(\d+|\[[^\]]*\]))?(\+\d+)?(\.\w+)?"),
        (("JobIDRaw",), r"\d+(\.\w+)?"),
        (("State",), r"([A-Z_]+( by \d+)?)?"),
        (("ExitCode", "DerivedExitCode"), r"(\d+:\d+)?"),
        (("Submit", "Start", "End", "Eligible"), _TIME),
        (
            (
                "ElapsedRaw",
                "TimelimitRaw",
                "NNodes",
                "NCPUS",
                "AllocCPUS",
                "UID",
                "GID",
                "ReqCPUS",
                "CPUTimeRAW",
                "ResvCPURAW",
            ),
            _COUNT,
        ),
        (
            ("Elapsed", "Timelimit", "TotalCPU", "SystemCPU", "UserCPU", "Suspended", "CPUTime"),
            _SPAN,
        ),
    )
    for name in names
}
_NULL_NODES = frozenset({"", "None assigned", "(null)"})


@functools.lru_cache(maxsize=1024)
def _state(text: str) -> tuple[str, int | None]:
    return parse_job_state(text)


@functools.lru_cache(maxsize=1024)
def _exit(text: str) -> tuple[int | None, int | None]:
    return parse_exit_code(text)


# Reports repeat the same few values (TotalCPU of short steps, requested TRES,
# ReqMem) thousands of times: caching their parse is most of the speed.
_duration = functools.lru_cache(maxsize=16384)(parse_duration)
_memory = functools.lru_cache(maxsize=16384)(parse_memory)
_minutes = functools.lru_cache(maxsize=4096)(parse_minutes)


@functools.lru_cache(maxsize=16384)
def _tres_items(text: str) -> tuple[tuple[str, Any], ...]:
    return tuple(parse_tres(text).items())


def _tres(text: str) -> dict[str, Any]:
    """A fresh dict each time: callers may change it."""
    return dict(_tres_items(text))


@functools.lru_cache(maxsize=16384)
def _gpus(alloc_text: str, req_text: str) -> tuple[int | None, str | None]:
    return gpus(dict(_tres_items(alloc_text)), dict(_tres_items(req_text)))


def _int(text: str, what: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"non-numeric {what} {text!r}")
    return int(text)


def _parse_job_id(
    job_id: str, raw: str
) -> tuple[int, int | None, int | None, int | None, int | None]:
    """``(job_id, array_job_id, array_task_id, het_job_id, het_job_offset)`` of a job line."""
    array_job_id = array_task_id = het_job_id = het_offset = None
    base = job_id
    if "_" in job_id:
        base, _, task = job_id.partition("_")
        if not base.isdigit():
            raise ValueError(f"bad array job id {job_id!r}")
        array_job_id = int(base)
        if task.isdigit():
            array_task_id = int(task)
        elif not (task.startswith("[") and task.endswith("]")):
            raise ValueError(f"bad array task {job_id!r}")
    elif "+" in job_id:
        base, _, offset = job_id.partition("+")
        if not (base.isdigit() and offset.isdigit()):
            raise ValueError(f"bad het job id {job_id!r}")
        het_job_id, het_offset = int(base), int(offset)
    elif not job_id.isdigit():
        raise ValueError(f"non-numeric job id {job_id!r}")
    if raw:
        if not raw.isdigit():
            raise ValueError(f"non-numeric JobIDRaw {raw!r}")
        number = int(raw)
    elif het_job_id is not None:
        number = het_job_id + (het_offset or 0)  # het components get consecutive ids
    elif array_task_id is not None:
        raise ValueError("array task without a JobIDRaw column: its job id is unknown")
    else:
        number = int(base)
    return number, array_job_id, array_task_id, het_job_id, het_offset


def _resplit(parts: list[str], header: list[str], delim: str) -> list[str] | None:
    """Put the extra fields of a line back into the one free-text column they belong to.

    Each free-text column is tried; the split is kept when every typed column
    then has its shape. ``SubmitLine`` (shell pipes in ``--wrap``) wins a tie;
    any other ambiguity gives ``None``.
    """
    extra = len(parts) - len(header)
    checks = [(i, _SHAPES[name]) for i, name in enumerate(header) if name in _SHAPES]
    valid: list[tuple[str, list[str]]] = []
    for column in _FREE_TEXT:
        if column not in header:
            continue
        at = header.index(column)
        candidate = [*parts[:at], delim.join(parts[at : at + extra + 1]), *parts[at + extra + 1 :]]
        if all(shape.match(candidate[i]) for i, shape in checks):
            valid.append((column, candidate))
    if len(valid) == 1:
        return valid[0][1]
    for column, candidate in valid:
        if column == "SubmitLine":
            return candidate
    return None


def parse_sacct_psv(
    lines: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    timezone: tzinfo = UTC,
) -> Iterator[Job]:
    """Jobs of a ``sacct --parsable2`` report (see the module docstring)."""

    if timezone is UTC:

        def when(text: str) -> datetime | None:
            # the common case, inlined: sacct's "2026-11-21T10:00:00" in UTC
            if len(text) == 19 and text[10] == "T":
                try:
                    return datetime.fromisoformat(text).replace(tzinfo=UTC)
                except ValueError:
                    pass
            return parse_timestamp(text, UTC)

    else:

        @functools.lru_cache(maxsize=65536)
        def when(text: str) -> datetime | None:
            return parse_timestamp(text, timezone)

    def fail(reason: str, line_no: int, text: str) -> None:
        err = SacctParseError(reason, source=source, line_no=line_no, text=text)
        if errors is None:
            raise err
        errors.append(err)

    header: list[str] | None = None
    delim = SACCT_DELIMITER
    width = 0
    getter = None
    job: Job | None = None
    job_raw = ""
    job_elapsed: float | None = None
    job_cpu: float | None = None
    bad_raw = ""

    for line_no, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        if getter is None:
            delim = SACCT_DELIMITER if SACCT_DELIMITER in line else "|"
            fields = line.split(delim)
            if fields[0] in _KNOWN_FIELDS and all(f in _KNOWN_FIELDS for f in fields[:3]):
                header = fields
            else:
                header = list(SACCT_FIELDS)
            width = len(header)
            index = {name: i for i, name in enumerate(header)}
            if "JobID" not in index:
                fail("the header has no JobID column", line_no, line)
                return
            getter = operator.itemgetter(*(index.get(name, width) for name in _WANTED))
            if header is fields:
                continue
        parts = line.split(delim)
        if len(parts) != width:
            fixed = _resplit(parts, header, delim) if len(parts) > width else None
            if fixed is None:
                fail(f"{len(parts)} fields, expected {width}", line_no, line)
                continue
            parts = fixed
        elif parts == header:
            continue  # a repeated header (concatenated reports)
        parts.append("")
        (
            jid,
            raw,
            name,
            user,
            account,
            partition,
            qos,
            state_text,
            exit_text,
            submit,
            start,
            end,
            elapsed_raw,
            elapsed_text,
            limit_raw,
            limit_text,
            nnodes,
            ncpus,
            alloc_cpus,
            nodelist,
            req_mem,
            req_tres,
            alloc_tres,
            max_rss,
            total_cpu,
            workdir,
            comment,
        ) = getter(parts)
        try:
            if "." in jid:  # a step line
                parent = raw.partition(".")[0] if raw else jid.partition(".")[0]
                if job is not None and parent == job_raw:
                    state, _ = _state(state_text) if state_text else (None, None)
                    code, sig = _exit(exit_text)
                    if elapsed_raw.isdigit():
                        step_elapsed: float | None = float(elapsed_raw)
                    elif elapsed_raw:
                        raise ValueError(f"non-numeric ElapsedRaw {elapsed_raw!r}")
                    else:
                        step_elapsed = _duration(elapsed_text)
                    job.steps.append(
                        step_summary(
                            step_id=jid.partition(".")[2],
                            name=name or None,
                            state=state,
                            exit_code=code,
                            signal=sig,
                            elapsed_s=step_elapsed,
                            total_cpu_s=_duration(total_cpu),
                            max_rss_mb=_memory(max_rss, default_unit="K")[0],
                            nodes=None if nodelist in _NULL_NODES else nodelist,
                        )
                    )
                elif parent != bad_raw:
                    raise ValueError("step line without its job line before it")
                continue
            # a job line: the previous job is complete
            if job is not None:
                yield finish_job(job, elapsed_s=job_elapsed, total_cpu_s=job_cpu)
                job = None
            job_raw = raw or jid
            job_id, array_job_id, array_task_id, het_job_id, het_offset = _parse_job_id(jid, raw)
            state, cancelled_by = _state(state_text)
            if state in FINAL_STATES:
                code, sig = _exit(exit_text)
            else:
                code = sig = None
            tres_req = _tres(req_tres)
            tres_alloc = _tres(alloc_tres)
            num_gpus, gpu_type = _gpus(alloc_tres, req_tres)
            num_nodes = _int(nnodes, "NNodes")
            num_cpus = _int(ncpus or alloc_cpus, "NCPUS")
            mem = tres_alloc.get("mem") or tres_req.get("mem")
            if mem is None and req_mem:
                mb, per = _memory(req_mem)
                if mb is not None:
                    factor = (num_cpus or 1) if per == "cpu" else (num_nodes or 1) if per else 1
                    mem = round(mb * factor)
            if elapsed_raw:
                job_elapsed = float(_int(elapsed_raw, "ElapsedRaw") or 0)
            else:
                job_elapsed = _duration(elapsed_text)
            job_cpu = _duration(total_cpu)
            job = Job(
                cluster_name=cluster_name,
                job_id=job_id,
                array_job_id=array_job_id,
                array_task_id=array_task_id,
                het_job_id=het_job_id,
                het_job_offset=het_offset,
                name=name or None,
                username=user or None,
                account=account or None,
                partition=partition or None,
                qos=qos or None,
                job_state=state,
                cancelled_by=cancelled_by,
                exit_code=code,
                signal=sig,
                submit_time=when(submit),
                start_time=when(start),
                end_time=when(end) if state in FINAL_STATES else None,
                time_limit=_minutes(limit_raw or limit_text),
                nodes=None if nodelist in _NULL_NODES else nodelist,
                num_nodes=num_nodes,
                num_cpus=num_cpus,
                mem_mb=int(mem) if isinstance(mem, (int, float)) else None,
                num_gpus=num_gpus,
                gpu_type=gpu_type,
                tres_requested=tres_req,
                tres_allocated=tres_alloc,
                working_directory=workdir or None,
                comment=comment or None,
            )
        except ValueError as exc:
            if "." not in jid:
                job = None
                bad_raw = raw or jid
            fail(str(exc), line_no, line)
    if job is not None:
        yield finish_job(job, elapsed_s=job_elapsed, total_cpu_s=job_cpu)
