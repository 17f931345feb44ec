"""``scontrol show node --oneliner`` (or the multi-line form) as schema Nodes.

Grammar::

    report := record*
    record := "NodeName=" value (SP key "=" value)*     one line, or continuation
                                                        lines that start with blanks
    key    := [A-Za-z/:_]+

Values contain spaces (``OS=Linux 6.1 #1 SMP``, ``Reason=hardware failure: DIMM
B2``), so a record is split before each `` key=`` (``\\s+(?=[A-Za-z/:_]+=)``),
never on blanks. ``Reason`` may end with ``[user@time]`` (who set it and when):
that part is cut off into ``reason_time``, and text inside a reason is never
taken for a key when the ``[user@time]`` marker is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, tzinfo

from clockwork_core.schema import Node

from ._errors import NodeParseError, SlurmParseError
from ._nodes import split_state_text
from .values import (
    EMPTY,
    gpus_from_gres,
    parse_memory_mb,
    parse_timestamp,
    parse_tres,
    text_or_none,
)

_KEY_SPLIT = re.compile(r"\s+(?=[A-Za-z/:_]+=)")
_REASON = re.compile(r"(?:^|\s)Reason=(.*?) \[([^\]@\s]*)@([^\]\s]*)\](?=\s|$)")


def split_key_values(record: str) -> dict[str, str]:
    """The ``key=value`` pairs of one scontrol record, values stripped."""
    out: dict[str, str] = {}
    match = _REASON.search(record)
    if match is not None:
        out["Reason"] = match.group(1).strip()
        out["ReasonUser"] = match.group(2)
        out["ReasonTime"] = match.group(3)
        record = record[: match.start()] + " " + record[match.end() :]
    for part in _KEY_SPLIT.split(record.strip()):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {part[:60]!r}")
        out.setdefault(key, value.strip())
    return out


def _int(fields: dict[str, str], key: str) -> int | None:
    value = fields.get(key, "")
    if value in EMPTY:
        return None
    if not value.isdigit():
        raise ValueError(f"non-numeric {key} {value!r}")
    return int(value)


def _records(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    start, parts = 0, []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line[:1].isspace() and parts:
            parts.append(line.strip())
            continue
        if parts:
            yield start, " ".join(parts)
        start, parts = line_no, [line.strip()]
    if parts:
        yield start, " ".join(parts)


def scontrol_node(fields: dict[str, str], *, cluster_name: str, timezone: tzinfo = UTC) -> Node:
    """One record's fields as a Node."""
    name = fields.get("NodeName", "")
    if not name or " " in name:
        raise ValueError(f"bad NodeName {name!r}")
    state, flags = split_state_text(fields.get("State", "UNKNOWN"))
    gres = text_or_none(fields.get("Gres"))
    num_gpus, gpu_type = gpus_from_gres(gres)
    alloc_gpus = None
    if num_gpus is not None:
        alloc_gpus = parse_tres(fields.get("AllocTRES")).get("gres/gpu", 0)
    load = fields.get("CPULoad", "")
    try:
        cpu_load = None if load in EMPTY else float(load)
    except ValueError:
        raise ValueError(f"bad CPULoad {load!r}") from None
    memory = parse_memory_mb(fields.get("RealMemory"))
    alloc_memory = parse_memory_mb(fields.get("AllocMem"))
    reason = text_or_none(fields.get("Reason"))
    partitions = text_or_none(fields.get("Partitions"))
    features = text_or_none(fields.get("AvailableFeatures"))
    return Node(
        cluster_name=cluster_name,
        name=name,
        state=state,
        state_flags=flags,
        reason=reason,
        reason_time=parse_timestamp(fields.get("ReasonTime"), timezone) if reason else None,
        partitions=partitions.split(",") if partitions else [],
        cpus=_int(fields, "CPUTot"),
        alloc_cpus=_int(fields, "CPUAlloc"),
        real_memory_mb=None if memory is None else round(memory),
        alloc_memory_mb=None if alloc_memory is None else round(alloc_memory),
        gres=gres,
        gpu_type=gpu_type,
        num_gpus=num_gpus,
        alloc_gpus=alloc_gpus,
        features=features.split(",") if features else [],
        cpu_load=cpu_load,
        last_busy=parse_timestamp(fields.get("LastBusyTime"), timezone),
    )


def parse_scontrol_nodes(
    lines: Iterator[str],
    *,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    timezone: tzinfo = UTC,
) -> Iterator[Node]:
    """Nodes of ``scontrol show node [--oneliner]``."""
    for line_no, record in _records(lines):
        try:
            if not record.startswith("NodeName="):
                raise ValueError("a node record starts with NodeName=")
            yield scontrol_node(
                split_key_values(record), cluster_name=cluster_name, timezone=timezone
            )
        except ValueError as exc:
            err = NodeParseError(str(exc), source=source, line_no=line_no, text=record)
            if errors is None:
                raise err from None
            errors.append(err)
