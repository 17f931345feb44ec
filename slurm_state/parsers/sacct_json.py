"""``sacct --json`` (schemas dbv0.0.38 to v0.0.40), streamed one job at a time.

The document is ``{"meta": ..., "errors": [...], "jobs": [job, ...]}``; see
:mod:`._jsonstream` for how the jobs are read without loading the file.

Schema versions differ in how numbers are written and in a few paths; each
has an adapter (:data:`ADAPTERS`), chosen from ``meta`` (or ``slurm_version``):

* v0.0.38 (Slurm 22.05): plain numbers, ``state.current`` a string, steps'
  ``step.id`` without the job id. **Exit codes are always 0** (a 22.05 bug):
  a FAILED job's 0 is reported as ``exit_code = None`` (unknown); the store
  prefers the ``--parsable2`` value when it has one. Signals are right
  (``exit_code.signal.signal_id``).
* v0.0.39 (23.02) and later: numbers wrapped as ``{"set", "infinite", "number"}``,
  ``state.current`` may be a list, ``step.id`` is ``"7.batch"``, ``required``
  has ``memory_per_cpu``/``memory_per_node``, the signal is ``signal.id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clockwork_core.schema import FINAL_STATES, Job

from ._errors import SacctParseError, SlurmParseError
from ._jobs import finish_job, gpus, step_summary
from ._jsonstream import ArrayStream, BadElement, JsonStreamError
from .values import (
    from_epoch,
    json_int,
    json_number,
    parse_job_state,
    text_or_none,
)


def is_sacct_job(obj: Any) -> bool:
    """Whether a decoded JSON value looks like one job of ``sacct --json``."""
    return isinstance(obj, dict) and "job_id" in obj and "state" in obj


def tres_list(items: Any) -> dict[str, Any]:
    """A JSON TRES list ``[{"type","name","count"}]`` as the dict ``parse_tres`` gives.

    Keys are ``type`` or ``type/name`` (``gres/gpu``, ``gres/gpu:a100``); memory
    counts are already megabytes; unknown counts are left out.
    """
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        count = json_number(item.get("count"))
        if not kind or count is None:
            continue
        name = item.get("name")
        out[f"{kind}/{name}" if name else kind] = count
    return out


def _seconds(value: Any) -> float | None:
    """``{"seconds", "microseconds"}`` as seconds."""
    if not isinstance(value, dict):
        number = json_number(value)
        return float(number) if isinstance(number, (int, float)) else None
    seconds = json_int(value.get("seconds")) or 0
    micros = json_int(value.get("microseconds")) or 0
    return seconds + micros / 1e6


class Adapter38:
    """Slurm 22.05, ``openapi/dbv0.0.38``."""

    version = "v0.0.38"
    exit_codes_broken = True

    def state(self, job: dict[str, Any]) -> str:
        state = job.get("state")
        current = state.get("current") if isinstance(state, dict) else state
        if isinstance(current, list):
            current = current[0] if current else None
        if not current:
            raise ValueError("job without a state")
        return parse_job_state(str(current))[0]

    def exit_code(self, value: Any) -> tuple[int | None, int | None]:
        """``(exit_code, signal)`` of an ``exit_code`` object."""
        if not isinstance(value, dict):
            number = json_int(value)
            return number, None
        code = json_int(value.get("return_code"))
        signal_obj = value.get("signal") or {}
        signal = json_int(signal_obj.get("signal_id", signal_obj.get("id")))
        if value.get("status") == "SIGNALED" and code is None:
            code = 0
        return code, (signal or None)

    def step_id(self, step: dict[str, Any], job_id: int) -> str:
        ident = (step.get("step") or {}).get("id")
        text = str(ident)
        prefix = f"{job_id}."
        return text[len(prefix) :] if text.startswith(prefix) else text

    def requested_mem_mb(self, job: dict[str, Any], num_cpus: int | None) -> int | None:
        required = job.get("required") or {}
        if "memory_per_node" in required or "memory_per_cpu" in required:
            per_node = json_int(required.get("memory_per_node"))
            if per_node:
                nodes = json_int(job.get("allocation_nodes")) or 1
                return per_node * nodes
            per_cpu = json_int(required.get("memory_per_cpu"))
            return per_cpu * (num_cpus or 1) if per_cpu else None
        return json_int(required.get("memory"))


class Adapter39(Adapter38):
    """Slurm 23.02 and later: wrapped numbers (``json_number`` unwraps them everywhere)."""

    version = "v0.0.39"
    exit_codes_broken = False


ADAPTERS: dict[str, type[Adapter38]] = {"v0.0.38": Adapter38, "v0.0.39": Adapter39}


def adapter_for(meta: dict[str, Any] | None, slurm_version: str | None) -> Adapter38:
    """The adapter of a document: from ``meta.plugin`` / ``meta.Slurm``, else the version."""
    meta = meta or {}
    plugin = meta.get("plugin") or {}
    text = " ".join(str(plugin.get(k, "")) for k in ("type", "data_parser"))
    for version, adapter in ADAPTERS.items():
        if version in text:
            return adapter()
    if "v0.0.4" in text or "v0.0.39" in text:
        return Adapter39()
    release = str((meta.get("Slurm") or {}).get("release") or slurm_version or "")
    major_minor = tuple(int(p) for p in release.split(".")[:2] if p.isdigit())
    if major_minor and major_minor >= (23, 2):
        return Adapter39()
    return Adapter38()


def sacct_job(
    raw: dict[str, Any], *, cluster_name: str, adapter: Adapter38, slurm_version: str | None
) -> Job:
    """One ``jobs[]`` element as a Job (raises ValueError when it is unusable)."""
    job_id = json_int(raw.get("job_id"))
    if job_id is None or job_id <= 0:
        raise ValueError(f"bad job_id {raw.get('job_id')!r}")
    state = adapter.state(raw)
    array = raw.get("array") or {}
    array_job_id = json_int(array.get("job_id")) or None
    array_task_id = json_int(array.get("task_id")) if array_job_id else None
    het = raw.get("het") or {}
    het_job_id = json_int(het.get("job_id")) or None
    het_offset = json_int(het.get("job_offset")) if het_job_id else None
    tres = raw.get("tres") or {}
    tres_alloc = tres_list(tres.get("allocated"))
    tres_req = tres_list(tres.get("requested"))
    num_gpus, gpu_type = gpus(tres_alloc, tres_req)
    required = raw.get("required") or {}
    num_cpus = json_int(tres_alloc.get("cpu")) or json_int(required.get("CPUs"))
    num_nodes = json_int(raw.get("allocation_nodes")) or json_int(tres_alloc.get("node"))
    mem = tres_alloc.get("mem") or tres_req.get("mem")
    mem_mb = json_int(mem) if mem is not None else adapter.requested_mem_mb(raw, num_cpus)

    final = state in FINAL_STATES
    code, signal = adapter.exit_code(raw.get("exit_code"))
    if not final:
        code = signal = None
    elif adapter.exit_codes_broken and code == 0 and state == "FAILED":
        code = None  # 22.05 prints 0 for every exit code: a FAILED job's is unknown
    cancelled_by = None
    if state == "CANCELLED" and raw.get("kill_request_user") == "root":
        cancelled_by = 0  # JSON names the user; only root's uid is known without a lookup

    times = raw.get("time") or {}
    comment = raw.get("comment")
    if isinstance(comment, dict):
        comment = comment.get("job")
    nodes = text_or_none(raw.get("nodes"))
    if nodes == "None assigned":
        nodes = None

    steps = []
    for step in raw.get("steps") or []:
        if not isinstance(step, dict):
            continue
        step_code, step_signal = adapter.exit_code(step.get("exit_code"))
        step_times = step.get("time") or {}
        step_state = step.get("state")
        if isinstance(step_state, list):
            step_state = step_state[0] if step_state else None
        rss_bytes = None
        step_tres = step.get("tres") or {}
        for item in (step_tres.get("requested") or {}).get("max") or []:
            if isinstance(item, dict) and item.get("type") == "mem":
                rss_bytes = json_number(item.get("count"))
        step_nodes = (step.get("nodes") or {}).get("range")
        steps.append(
            step_summary(
                step_id=adapter.step_id(step, job_id),
                name=(step.get("step") or {}).get("name"),
                state=parse_job_state(step_state)[0] if step_state else None,
                exit_code=step_code,
                signal=step_signal,
                elapsed_s=_seconds(step_times.get("elapsed")),
                total_cpu_s=_seconds(step_times.get("total")),
                max_rss_mb=rss_bytes / 1048576 if isinstance(rss_bytes, (int, float)) else None,
                nodes=text_or_none(step_nodes),
            )
        )

    job = Job(
        cluster_name=cluster_name,
        job_id=job_id,
        array_job_id=array_job_id,
        array_task_id=array_task_id,
        het_job_id=het_job_id,
        het_job_offset=het_offset,
        name=raw.get("name") or None,
        username=raw.get("user") or None,
        account=raw.get("account") or None,
        partition=raw.get("partition") or None,
        qos=raw.get("qos") or None,
        job_state=state,
        cancelled_by=cancelled_by,
        exit_code=code,
        signal=signal,
        submit_time=from_epoch(times.get("submission")),
        start_time=from_epoch(times.get("start")),
        end_time=from_epoch(times.get("end")) if final else None,
        time_limit=json_int(times.get("limit")),
        nodes=nodes,
        num_nodes=num_nodes,
        num_cpus=num_cpus,
        mem_mb=mem_mb,
        num_gpus=num_gpus,
        gpu_type=gpu_type,
        tres_requested=tres_req,
        tres_allocated=tres_alloc,
        working_directory=raw.get("working_directory") or None,
        comment=comment or None,
        steps=steps,
    )
    # the job's own CPU total is 0 in 22.05 accounting: then the steps' sum is used
    total_cpu = _seconds(times.get("total")) or None
    return finish_job(job, elapsed_s=_seconds(times.get("elapsed")), total_cpu_s=total_cpu)


def parse_sacct_json(
    chunks: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    slurm_version: str | None = None,
) -> Iterator[Job]:
    """Jobs of a ``sacct --json`` document, one at a time."""
    yield from _parse_json_jobs(
        chunks,
        cluster_name=cluster_name,
        source=source,
        errors=errors,
        slurm_version=slurm_version,
        is_element=is_sacct_job,
        to_job=sacct_job,
        error_type=SacctParseError,
    )


def _parse_json_jobs(
    chunks: Iterator[str],
    *,
    cluster_name: str,
    source: str,
    errors: list[SlurmParseError] | None,
    slurm_version: str | None,
    is_element: Any,
    to_job: Any,
    error_type: type[SlurmParseError],
) -> Iterator[Job]:
    def fail(reason: str, line_no: int | None, text: str) -> None:
        err = error_type(reason, source=source, line_no=line_no, text=text)
        if errors is None:
            raise err
        errors.append(err)

    stream = ArrayStream(chunks, "jobs", is_element=is_element)
    adapter: Adapter38 | None = None
    try:
        for index, line_no, element in stream:
            if adapter is None:
                adapter = adapter_for(stream.other.get("meta"), slurm_version)
            if isinstance(element, BadElement):
                fail(f"jobs[{index}]: {element.reason}", line_no, element.text)
                continue
            try:
                if not is_element(element):
                    raise ValueError("not a job object")
                yield to_job(
                    element,
                    cluster_name=cluster_name,
                    adapter=adapter,
                    slurm_version=slurm_version,
                )
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                fail(f"jobs[{index}]: {exc}", line_no, _short(element))
    except JsonStreamError as exc:
        fail(exc.reason, exc.line_no, exc.text)
        return
    if not stream.found:
        fail("no 'jobs' array in the document", None, "")


def _short(element: Any) -> str:
    if isinstance(element, dict):
        return ", ".join(f"{k}={element[k]!r}" for k in list(element)[:6])
    return repr(element)
