"""What every job parser shares: the step summary and the derived job fields."""

from __future__ import annotations

from typing import Any

from clockwork_core.schema import FINAL_STATES, Job

from .values import clip01, gpus_from_tres

#: Keys of one entry of ``Job.steps``.
STEP_KEYS: tuple[str, ...] = (
    "step_id",
    "name",
    "state",
    "exit_code",
    "signal",
    "elapsed_s",
    "total_cpu_s",
    "max_rss_mb",
    "nodes",
)


def step_summary(
    *,
    step_id: str,
    name: str | None,
    state: str | None,
    exit_code: int | None,
    signal: int | None,
    elapsed_s: float | None,
    total_cpu_s: float | None,
    max_rss_mb: float | None,
    nodes: str | None,
) -> dict[str, Any]:
    """One entry of ``Job.steps`` (``step_id`` is ``batch``, ``extern``, ``0``, ...)."""
    return {
        "step_id": step_id,
        "name": name,
        "state": state,
        "exit_code": exit_code,
        "signal": signal,
        "elapsed_s": elapsed_s,
        "total_cpu_s": total_cpu_s,
        "max_rss_mb": None if max_rss_mb is None else round(max_rss_mb, 3),
        "nodes": nodes,
    }


def gpus(
    tres_allocated: dict[str, Any], tres_requested: dict[str, Any]
) -> tuple[int | None, str | None]:
    """GPUs from the allocated TRES; a job not allocated yet counts what it requested."""
    if tres_allocated:
        return gpus_from_tres(tres_allocated)
    if tres_requested:
        return gpus_from_tres(tres_requested)
    return None, None


def finish_job(job: Job, *, elapsed_s: float | None, total_cpu_s: float | None) -> Job:
    """Fill what depends on the steps: the signal, and the efficiencies once the job is over.

    cpu_efficiency = CPU time / (elapsed x CPUs); mem_efficiency = the largest
    step MaxRSS / the memory per node. Both only for a finished job, clipped to
    0..1, ``None`` when a term is unknown.
    """
    steps = job.steps
    if job.signal is None and steps:
        batch = next((s for s in steps if s["step_id"] == "batch"), None)
        for step in [batch] if batch is not None else steps:
            if step["signal"]:
                job.signal = step["signal"]
                break
    if job.job_state not in FINAL_STATES:
        return job
    if total_cpu_s is None and steps:
        cpu_parts = [s["total_cpu_s"] for s in steps if s["total_cpu_s"] is not None]
        total_cpu_s = sum(cpu_parts) if cpu_parts else None
    if elapsed_s and job.num_cpus and total_cpu_s is not None:
        job.cpu_efficiency = clip01(total_cpu_s / (elapsed_s * job.num_cpus))
    rss = [s["max_rss_mb"] for s in steps if s["max_rss_mb"] is not None]
    if rss and job.mem_mb:
        per_node = job.mem_mb / (job.num_nodes or 1)
        job.mem_efficiency = clip01(max(rss) / per_node) if per_node > 0 else None
    return job
