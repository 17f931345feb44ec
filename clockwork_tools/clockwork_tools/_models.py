"""Small typed views of the server's JSON, each keeping the server's dict as ``.raw``.

The server may add fields at any time: the dataclasses name the ones scripts
use most, ``.raw`` keeps everything. Times become timezone-aware ``datetime``
objects (ISO 8601, HTTP dates and epoch seconds are all understood).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Generic, Iterator, List, NamedTuple, Optional, TypeVar

__all__ = [
    "Cluster",
    "FileInfo",
    "Gpu",
    "Job",
    "JobRef",
    "Node",
    "Page",
    "Submission",
    "Usage",
    "User",
    "parse_datetime",
]

T = TypeVar("T")


def parse_datetime(value: Any) -> Optional[datetime]:
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
    name: Optional[str] = None
    username: Optional[str] = None
    user: Optional[str] = None  # the Clockwork user (email) the job maps to
    account: Optional[str] = None
    partition: Optional[str] = None
    qos: Optional[str] = None
    job_state: str = "PENDING"
    array_job_id: Optional[int] = None
    array_task_id: Optional[int] = None
    exit_code: Optional[int] = None
    submit_time: Optional[datetime] = None
    start_time: Optional[datetime] = None
    end_time: Optional[datetime] = None
    time_limit: Optional[int] = None
    nodes: Optional[str] = None
    num_nodes: Optional[int] = None
    num_cpus: Optional[int] = None
    mem_mb: Optional[int] = None
    num_gpus: Optional[int] = None
    gpu_type: Optional[str] = None
    working_directory: Optional[str] = None
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
    reason: Optional[str] = None
    partitions: list = field(default_factory=list)
    cpus: Optional[int] = None
    alloc_cpus: Optional[int] = None
    real_memory_mb: Optional[int] = None
    alloc_memory_mb: Optional[int] = None
    gres: Optional[str] = None
    gpu_type: Optional[str] = None
    num_gpus: Optional[int] = None
    alloc_gpus: Optional[int] = None
    features: list = field(default_factory=list)
    cpu_load: Optional[float] = None
    last_busy: Optional[datetime] = None
    reason_time: Optional[datetime] = None
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
    """One GPU model on a cluster, with how many exist and how many are in use."""

    cluster_name: Optional[str] = None
    gpu_type: Optional[str] = None
    total: Optional[int] = None
    allocated: Optional[int] = None
    nodes: Optional[int] = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Gpu:
        aliases = {
            "cluster_name": ("cluster_name", "cluster"),
            "gpu_type": ("gpu_type", "name", "type", "model"),
            "total": ("total", "num_gpus", "count"),
            "allocated": ("allocated", "alloc_gpus", "used"),
            "nodes": ("nodes", "num_nodes", "node_count"),
        }
        values = {}
        for name, keys in aliases.items():
            for key in keys:
                if key in data and not isinstance(data[key], (dict, list)):
                    values[name] = data[key]
                    break
        return cls(raw=data, **values)


@dataclass
class Cluster:
    """A cluster Clockwork knows, with the freshness of its data."""

    name: str
    display_name: Optional[str] = None
    last_success: Optional[datetime] = None
    last_attempt: Optional[datetime] = None
    last_error: Optional[datetime] = None
    last_error_message: Optional[str] = None
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
    display_name: Optional[str] = None
    status: Optional[str] = None
    roles: list = field(default_factory=list)
    cluster_accounts: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> User:
        inner = data.get("user") if isinstance(data.get("user"), dict) else data
        return _build(cls, inner, (), raw=data)

    @property
    def clusters(self) -> List[str]:
        return sorted(self.cluster_accounts)


@dataclass
class Submission:
    """A job submitted (or adopted) through Clockwork, followed to its final state."""

    uuid: str
    state: Optional[str] = None
    cluster_name: Optional[str] = None
    job_id: Optional[int] = None
    name: Optional[str] = None
    user_email: Optional[str] = None
    error: Optional[str] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    submitted_at: Optional[datetime] = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    #: States after which nothing changes any more.
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
            "REJECTED",
            "REVOKED",
            "SPECIAL_EXIT",
            "TIMEOUT",
        }
    )

    @classmethod
    def from_dict(cls, data: dict) -> Submission:
        inner = data.get("submission") if isinstance(data.get("submission"), dict) else data
        merged = dict(inner)
        merged.setdefault("cluster_name", inner.get("cluster"))
        merged.setdefault("job_id", inner.get("slurm_job_id"))
        if merged.get("state") is None:
            merged["state"] = inner.get("status")
        return _build(
            cls, merged, ("created_at", "updated_at", "submitted_at"), raw=data
        )

    @property
    def is_final(self) -> bool:
        return (self.state or "").upper() in self.FINAL_STATES


@dataclass
class FileInfo:
    """One output file of a submission: ``path`` is what ``download`` takes."""

    path: str
    size: Optional[int] = None
    kind: Optional[str] = None  # "stdout", "stderr" or "file"
    modified: Optional[datetime] = None
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

    group_by: Optional[str] = None
    start: Optional[datetime] = None
    end: Optional[datetime] = None
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
class Page(Generic[T]):
    """One page of a listing: ``items`` and where to find the rest."""

    items: List[T]
    total: Optional[int] = None
    page: int = 1
    per_page: Optional[int] = None
    next: Optional[str] = None
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
