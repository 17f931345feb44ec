"""``sinfo --json`` and ``sinfo -N -o FORMAT`` (separated columns) as schema Nodes.

``sinfo --json`` (v0.0.38): sentinels leak through (``cpu_load: 4294967294``,
``free_memory: -2``) and become ``None``; ``cpu_load`` is the load x 100; the
state is a base state plus ``state_flags`` (a drained node is
``"unknown"`` + ``["DRAIN", ...]``). v0.0.39+ wraps numbers and may give the
state as a list: :func:`~.values.json_number` and the list handling cover both.

``sinfo -N -o``: one line per node *and partition*, merged here into one Node
with every partition. Grammar::

    report := [header] line*
    line   := value (SEP value)*         SEP = "\\x1f" (SINFO_FORMAT) or "|"

The columns come from the header (``NODELIST``, ``PARTITION``, ``STATE``, ...)
or, without one, from ``SINFO_FORMAT``. ``REASON`` is last in SINFO_FORMAT so a
separator inside a reason cannot shift the other columns. The text format has
no allocated memory, used GRES or last-busy time: those stay ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, tzinfo
from typing import Any

from clockwork_core.schema import Node

from ._errors import NodeParseError, SlurmParseError
from ._jsonstream import ArrayStream, BadElement, JsonStreamError
from ._nodes import normalize_node_state, split_state_text
from .values import (
    EMPTY,
    from_epoch,
    gpus_from_gres,
    json_int,
    json_int16,
    json_number,
    parse_memory_mb,
    parse_timestamp,
    text_or_none,
)

_SEP = "\x1f"

#: The ``-o`` format the fetcher requests with ``sinfo -N``: REASON last.
SINFO_FORMAT = _SEP.join(
    ["%N", "%P", "%T", "%c", "%C", "%m", "%e", "%O", "%G", "%f", "%H", "%u", "%E"]
)

#: The header sinfo prints for SINFO_FORMAT (the columns of a report without one).
SINFO_COLUMNS: tuple[str, ...] = (
    "NODELIST",
    "PARTITION",
    "STATE",
    "CPUS",
    "CPUS(A/I/O/T)",
    "MEMORY",
    "FREE_MEM",
    "CPU_LOAD",
    "GRES",
    "AVAIL_FEATURES",
    "TIMESTAMP",
    "USER",
    "REASON",
)


def _features(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v]
    text = text_or_none(value)
    return [f for f in text.split(",") if f] if text else []


def is_sinfo_node(obj: Any) -> bool:
    """Whether a decoded JSON value looks like one node of ``sinfo --json``."""
    return isinstance(obj, dict) and "name" in obj and "state" in obj


def sinfo_node(raw: dict[str, Any], *, cluster_name: str) -> Node:
    """One ``nodes[]`` element of ``sinfo --json`` as a Node."""
    name = raw.get("name") or raw.get("hostname")
    if not name or not isinstance(name, str):
        raise ValueError("node without a name")
    state_value = raw.get("state")
    flags = [str(f) for f in raw.get("state_flags") or []]
    if isinstance(state_value, list):  # v0.0.39+: ["IDLE", "DRAIN"]
        base = str(state_value[0]) if state_value else "unknown"
        flags = [str(f) for f in state_value[1:]] + flags
    else:
        base = str(state_value or "unknown")
    state, state_flags = normalize_node_state(base, flags)
    load = json_number(raw.get("cpu_load"))
    num_gpus, gpu_type = gpus_from_gres(text_or_none(raw.get("gres")))
    used, _ = gpus_from_gres(text_or_none(raw.get("gres_used")))
    return Node(
        cluster_name=cluster_name,
        name=name,
        state=state,
        state_flags=state_flags,
        reason=text_or_none(raw.get("reason")),
        reason_time=from_epoch(raw.get("reason_changed_at")),
        partitions=[str(p) for p in raw.get("partitions") or []],
        cpus=json_int16(raw.get("cpus")),
        alloc_cpus=json_int16(raw.get("alloc_cpus")),
        real_memory_mb=json_int(raw.get("real_memory")),
        alloc_memory_mb=json_int(raw.get("alloc_memory")),
        gres=text_or_none(raw.get("gres")),
        gpu_type=gpu_type,
        num_gpus=num_gpus,
        alloc_gpus=used if num_gpus is not None else None,
        features=_features(raw.get("features")),
        cpu_load=round(load / 100, 2) if isinstance(load, (int, float)) else None,
        last_busy=from_epoch(raw.get("last_busy")),
    )


def parse_sinfo_json(
    chunks: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
) -> Iterator[Node]:
    """Nodes of a ``sinfo --json`` document."""

    def fail(reason: str, line_no: int | None, text: str) -> None:
        err = NodeParseError(reason, source=source, line_no=line_no, text=text)
        if errors is None:
            raise err
        errors.append(err)

    stream = ArrayStream(chunks, "nodes", is_element=is_sinfo_node)
    try:
        for index, line_no, element in stream:
            if isinstance(element, BadElement):
                fail(f"nodes[{index}]: {element.reason}", line_no, element.text)
                continue
            try:
                if not is_sinfo_node(element):
                    raise ValueError("not a node object")
                yield sinfo_node(element, cluster_name=cluster_name)
            except (ValueError, TypeError, AttributeError) as exc:
                fail(f"nodes[{index}]: {exc}", line_no, repr(element)[:200])
    except JsonStreamError as exc:
        fail(exc.reason, exc.line_no, exc.text)
        return
    if not stream.found:
        fail("no 'nodes' array in the document", None, "")


def _int_or_none(text: str, what: str) -> int | None:
    text = text.strip()
    if text in EMPTY:
        return None
    if not text.isdigit():
        raise ValueError(f"non-numeric {what} {text!r}")
    return int(text)


def parse_sinfo_psv(
    lines: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    timezone: tzinfo = UTC,
) -> Iterator[Node]:
    """Nodes of a ``sinfo -N -o`` report, one per node (partitions merged)."""

    def fail(reason: str, line_no: int | None, text: str) -> None:
        err = NodeParseError(reason, source=source, line_no=line_no, text=text)
        if errors is None:
            raise err
        errors.append(err)

    columns: list[str] | None = None
    sep = _SEP
    nodes: dict[str, Node] = {}
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if columns is None:
            sep = _SEP if _SEP in line else "|"
            fields = [f.strip() for f in line.split(sep)]
            if "NODELIST" in fields or "HOSTNAMES" in fields:
                columns = fields
                continue
            columns = list(SINFO_COLUMNS)
        parts = line.split(sep)
        if len(parts) > len(columns) and columns[-1] == "REASON":
            parts = line.split(sep, len(columns) - 1)
        if len(parts) != len(columns):
            fail(f"{len(parts)} fields, expected {len(columns)}", line_no, line)
            continue
        row: dict[str, str] = {}
        for column, value in zip(columns, parts, strict=True):
            row.setdefault(column, value.strip())  # the first STATE (%T) wins over %t
        try:
            name = row.get("NODELIST") or row.get("HOSTNAMES") or ""
            if not name or " " in name:
                raise ValueError(f"bad node name {name!r}")
            partition = row.get("PARTITION", "").rstrip("*")
            node = nodes.get(name)
            if node is not None:
                if partition and partition not in node.partitions:
                    node.partitions.append(partition)
                continue
            state, flags = split_state_text(row.get("STATE", "unknown"))
            alloc_cpus = None
            cpus_aiot = row.get("CPUS(A/I/O/T)", "")
            if cpus_aiot:
                alloc = cpus_aiot.split("/")[0]
                alloc_cpus = _int_or_none(alloc, "CPUS(A/I/O/T)")
            load_text = row.get("CPU_LOAD", "")
            try:
                cpu_load = None if load_text in EMPTY else float(load_text)
            except ValueError:
                raise ValueError(f"bad CPU_LOAD {load_text!r}") from None
            gres = text_or_none(row.get("GRES"))
            num_gpus, gpu_type = gpus_from_gres(gres)
            memory = parse_memory_mb(row.get("MEMORY"))
            reason = text_or_none(row.get("REASON"))
            nodes[name] = Node(
                cluster_name=cluster_name,
                name=name,
                state=state,
                state_flags=flags,
                reason=reason,
                reason_time=parse_timestamp(row.get("TIMESTAMP"), timezone) if reason else None,
                partitions=[partition] if partition else [],
                cpus=_int_or_none(row.get("CPUS", ""), "CPUS"),
                alloc_cpus=alloc_cpus,
                real_memory_mb=None if memory is None else round(memory),
                alloc_memory_mb=None,
                gres=gres,
                gpu_type=gpu_type,
                num_gpus=num_gpus,
                alloc_gpus=None,
                features=_features(row.get("AVAIL_FEATURES")),
                cpu_load=cpu_load,
                last_busy=None,
            )
        except ValueError as exc:
            fail(str(exc), line_no, line)
    yield from nodes.values()
