"""Small typed views of the server's JSON, each keeping the server's dict as ``.raw``.

The server may add fields at any time: the dataclasses name the ones scripts
use most, ``.raw`` keeps everything. Times become timezone-aware ``datetime``
objects (ISO 8601, HTTP dates and epoch seconds are all understood).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Generic, NamedTuple, TypeVar

__all__ = [
    "Cluster",
    "FileInfo",
    "Gpu",
    "Job",
    "JobRef",
    "Node",
    "Page",
    "Submission",
    "Token",
    "Usage",
    "User",
    "parse_datetime",
]

T = TypeVar("T")


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from ISO 8601, an HTTP date or epoch seconds.

    None, "" and values that are not times give None (the dict in ``.raw``
    still has them), so one odd field never breaks a listing.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, dict) and "$date" in value:  # MongoDB extended JSON
        return parse_datetime(value["$date"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, str):
        return None
    text = value.strip()
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _build(cls: Any, data: dict, times: tuple = (), **extra: Any) -> Any:
    """An instance of the dataclass ``cls`` from the keys of ``data`` it names."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("raw",) or f.name in extra or not f.init:
            continue
        if f.name in data:
            value = data[f.name]
            values[f.name] = parse_datetime(value) if f.name in times else value
    values.update(extra)
    return cls(**values)


class JobRef(NamedTuple):
    """Where a job lives: unpack it into the job methods, ``client.job(*ref)``."""

    cluster: str
    job_id: int


@dataclass
class Job:
    """One Slurm job: the ``slurm`` fields Clockwork stores, plus its Clockwork user."""

    cluster_name: str
    job_id: int
    name: str | None = None
    username: str | None = None
    user: str | None = None  # the Clockwork user (email) the job maps to
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    job_state: str = "PENDING"
    array_job_id: int | None = None
    array_task_id: int | None = None
    exit_code: int | None = None
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
    working_directory: str | None = None
    props: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    _TIMES = ("submit_time", "start_time", "end_time")

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """From ``{"slurm": {...}, "cw": {...}}`` (or a flat dict of slurm fields)."""
        slurm = data.get("slurm") if isinstance(data.get("slurm"), dict) else data
        cw = data.get("cw") if isinstance(data.get("cw"), dict) else {}
        props = data.get("props") or data.get("user_props") or {}
        return _build(
            cls,
            slurm,
            cls._TIMES,
            user=cw.get("user"),
            props=props if isinstance(props, dict) else {},
            raw=data,
        )

    @property
    def ref(self) -> JobRef:
        return JobRef(self.cluster_name, int(self.job_id))

    @property
    def slurm(self) -> dict:
        """Every Slurm field the server sent (steps, TRES, efficiencies...)."""
        return self.raw.get("slurm", self.raw)

    @property
    def cw(self) -> dict:
        return self.raw.get("cw", {})


@dataclass
class Node:
    """One Slurm node as last scraped."""

    cluster_name: str
    name: str
    state: str = "unknown"
    state_flags: list = field(default_factory=list)
    reason: str | None = None
    partitions: list = field(default_factory=list)
    cpus: int | None = None
    alloc_cpus: int | None = None
    real_memory_mb: int | None = None
    alloc_memory_mb: int | None = None
    gres: str | None = None
    gpu_type: str | None = None
    num_gpus: int | None = None
    alloc_gpus: int | None = None
    features: list = field(default_factory=list)
    cpu_load: float | None = None
    last_busy: datetime | None = None
    reason_time: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Node:
        slurm = data.get("slurm") if isinstance(data.get("slurm"), dict) else data
        return _build(cls, slurm, ("last_busy", "reason_time"), raw=data)

    @property
    def slurm(self) -> dict:
        return self.raw.get("slurm", self.raw)


@dataclass
class Gpu:
    """One GPU model and its specs (``gpus()``)."""

    name: str
    display_name: str | None = None
    vendor: str | None = None
    arch: str | None = None
    memory_gb: float | None = None
    tflops_fp32: float | None = None
    tflops_fp16_tensor: float | None = None
    cores: int | None = None
    tdp_w: int | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Gpu:
        return _build(cls, data, (), name=data.get("name") or data.get("gpu_type") or "", raw=data)


@dataclass
class Cluster:
    """A cluster Clockwork knows, with the freshness of its data."""

    name: str
    display_name: str | None = None
    last_success: datetime | None = None
    last_attempt: datetime | None = None
    last_error: datetime | None = None
    last_error_message: str | None = None
    age_s: float | None = None  # seconds since the last successful scrape
    timezone: str | None = None
    submit_enabled: bool | None = None
    account: str | None = None  # your Slurm username there
    counts: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Cluster:
        status = data.get("status") if isinstance(data.get("status"), dict) else {}
        merged = {**status, **{k: v for k, v in data.items() if v is not None}}
        name = merged.get("name") or merged.get("cluster_name") or ""
        return _build(
            cls,
            merged,
            ("last_success", "last_attempt", "last_error"),
            name=name,
            raw=data,
        )


@dataclass
class User:
    """A Clockwork user (``me()``)."""

    email: str
    display_name: str | None = None
    status: str | None = None
    roles: list = field(default_factory=list)
    cluster_accounts: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> User:
        inner = data.get("user") if isinstance(data.get("user"), dict) else data
        return _build(cls, inner, (), raw=data)

    @property
    def clusters(self) -> list[str]:
        return sorted(self.cluster_accounts)


@dataclass
class Submission:
    """A job submitted (or adopted) through Clockwork, followed to its final state.

    ``state`` is PENDING (accepted, not yet sent to the cluster), SUBMITTED,
    then the Slurm state (RUNNING, ...), CANCELLING, and a final state.
    """

    uuid: str
    state: str | None = None
    cluster_name: str | None = None
    job_id: int | None = None
    name: str | None = None
    user: str | None = None
    username: str | None = None
    slurm_state: str | None = None
    source: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    submitted_at: datetime | None = None
    history: list = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    #: States after which nothing changes any more (Slurm's final job states).
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
            "SPECIAL_EXIT",
            "TIMEOUT",
        }
    )

    @classmethod
    def from_dict(cls, data: dict) -> Submission:
        inner = data.get("submission") if isinstance(data.get("submission"), dict) else data
        merged = dict(inner)
        if merged.get("cluster_name") is None:
            merged["cluster_name"] = inner.get("cluster")
        return _build(cls, merged, ("created_at", "updated_at", "submitted_at"), raw=data)

    @property
    def is_final(self) -> bool:
        return (self.state or "").upper() in self.FINAL_STATES


@dataclass
class FileInfo:
    """One output file of a submission: ``path`` is what ``download`` takes."""

    path: str
    size: int | None = None
    kind: str | None = None  # "stdout", "stderr" or "file"
    modified: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> FileInfo:
        merged = dict(data)
        merged.setdefault("path", data.get("name", ""))
        if merged.get("modified") is None:
            merged["modified"] = data.get("mtime") or data.get("modified_at")
        return _build(cls, merged, ("modified",), raw=data)


@dataclass
class Usage:
    """CPU-hours and GPU-hours over a period, grouped by user, account or cluster."""

    group_by: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    rows: list = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        if isinstance(data, list):
            return cls(rows=data, raw={"items": data})
        rows = data.get("items")
        if rows is None:
            rows = data.get("rows", data.get("results", []))
        merged = dict(data)
        merged.setdefault("start", data.get("since") or data.get("after"))
        merged.setdefault("end", data.get("until") or data.get("before"))
        return _build(cls, merged, ("start", "end"), rows=rows, raw=data)


@dataclass
class Token:
    """One of your API tokens; ``token`` (the secret) is set only in ``create_token``'s answer."""

    id: str
    name: str
    prefix: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used: datetime | None = None
    token: str | None = field(default=None, repr=False)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Token:
        return _build(cls, data, ("created_at", "expires_at", "last_used"), raw=data)


@dataclass
class Page(Generic[T]):
    """One page of a listing: ``items`` and where to find the rest."""

    items: list[T]
    total: int | None = None
    page: int = 1
    per_page: int | None = None
    next: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, item: Callable[[dict], T]) -> Page[T]:
        if isinstance(data, list):  # a bare list: everything on one page
            return cls(items=[item(d) for d in data], total=len(data), raw={"items": data})
        items = [item(d) for d in data.get("items", [])]
        return cls(
            items=items,
            total=data.get("total"),
            page=int(data.get("page") or 1),
            per_page=data.get("per_page"),
            next=data.get("next") or None,
            raw=data,
        )

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]
