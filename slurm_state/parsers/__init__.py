"""Slurm output of every format and version, parsed into the one schema.

Pure functions: they read the iterable they are given and nothing else (no
subprocess, no file opening, no printing), and stream: a job is yielded as soon
as it is complete, so a 600 MB ``sacct --json`` report is parsed in bounded
memory.

==============  =======================================  ===========================
``fmt``         input                                    notes
==============  =======================================  ===========================
``psv``         ``sacct --parsable2`` (header, any of    steps folded into their job
                ``SACCT_DELIMITER`` or ``|``)
``json``        ``sacct --json`` (dbv0.0.38 .. v0.0.40)  22.05 exit codes: see
                                                         :mod:`.sacct_json`
``squeue-json`` ``squeue --json``                        nothing filtered
``sinfo-json``  ``sinfo --json``
``sinfo-psv``   ``sinfo -N -o SINFO_FORMAT``             one node per name
``scontrol``    ``scontrol show node --oneliner``
``auto``        any of the above, by :func:`detect_format`
==============  =======================================  ===========================

A record that cannot be parsed raises :class:`SlurmParseError`, or, when the
caller passes an ``errors`` list, is appended to it and skipped: the others are
still parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from clockwork_core.schema import Job, Node

from ._errors import NodeParseError, SacctParseError, SlurmParseError, SqueueParseError
from ._input import Input
from .sacct_json import parse_sacct_json
from .sacct_psv import SACCT_DELIMITER, SACCT_FIELDS, parse_sacct_psv
from .scontrol import parse_scontrol_nodes
from .sinfo import SINFO_COLUMNS, SINFO_FORMAT, parse_sinfo_json, parse_sinfo_psv
from .squeue_json import parse_squeue_json
from .values import zone

__all__ = [
    "JOB_FORMATS",
    "NODE_FORMATS",
    "SACCT_DELIMITER",
    "SACCT_FIELDS",
    "SINFO_FORMAT",
    "NodeParseError",
    "SacctParseError",
    "SlurmParseError",
    "SqueueParseError",
    "detect_format",
    "parse_jobs",
    "parse_nodes",
]

JOB_FORMATS: tuple[str, ...] = ("psv", "json", "squeue-json")
NODE_FORMATS: tuple[str, ...] = ("sinfo-json", "sinfo-psv", "scontrol")

_PSV_HEADER = re.compile(rb"^\s*(JobID|JobIDRaw|Account|JobName)[|\x1f]")


def detect_format(first_bytes: bytes) -> str:
    """The format of a report from its first bytes (a few KB are plenty).

    JSON documents are told apart by their schema (``meta.plugin``) and keys;
    text reports by their first line. Raises :class:`SlurmParseError` when the
    bytes look like none of the formats.
    """
    head = first_bytes.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        nodes_at = head.find(b'"nodes"')
        jobs_at = head.find(b'"jobs"')
        if nodes_at >= 0 and (jobs_at < 0 or nodes_at < jobs_at):
            return "sinfo-json"
        if re.search(rb"dbv0\.0\.\d+|accounting_storage|\"steps\"|\"association\"", head):
            return "json"
        if b'"job_state"' in head or re.search(rb'"openapi/v0\.0\.\d+"', head):
            return "squeue-json"
        return "json"
    first_line = head.split(b"\n", 1)[0]
    if first_line.startswith(b"NodeName="):
        return "scontrol"
    if _PSV_HEADER.match(first_line):
        return "psv"
    if re.match(rb"^\s*(NODELIST|HOSTNAMES)\s*[|\x1f]", first_line):
        return "sinfo-psv"
    if b"\x1f" in first_line:
        width = first_line.count(b"\x1f") + 1
        if width == len(SACCT_FIELDS):
            return "psv"
        if width == len(SINFO_COLUMNS):
            return "sinfo-psv"
    raise SlurmParseError(
        "cannot tell the format (sacct --parsable2/--json, squeue --json, sinfo, scontrol)",
        text=first_line[:200].decode("utf-8", "replace"),
    )


def _resolve(fmt: str, source: Input, allowed: tuple[str, ...], what: str) -> str:
    if fmt == "auto":
        try:
            fmt = detect_format(source.head)
        except SlurmParseError as exc:
            raise SlurmParseError(exc.reason, source="<auto>", text=exc.text) from None
        if fmt not in allowed:
            raise SlurmParseError(f"this looks like {fmt}, not a {what} report")
    if fmt not in allowed:
        raise ValueError(f"unknown {what} format {fmt!r}: use one of {', '.join(allowed)} or auto")
    return fmt


def parse_jobs(
    data: Iterable[str] | Iterable[bytes] | BinaryIO,
    *,
    fmt: str,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    slurm_version: str | None = None,
    timezone: str = "UTC",
) -> Iterator[Job]:
    """The jobs of a report, one at a time.

    ``data`` is a file object (binary or text) or an iterable of lines.
    ``timezone`` is the cluster's (sacct prints local times); JSON times are
    epochs and need none. ``slurm_version`` picks the JSON adapter when the
    document does not say. ``fmt="auto"`` with an unrecognizable input raises
    :class:`SlurmParseError` before anything is yielded.
    """
    source_input = Input(data)
    try:
        fmt = _resolve(fmt, source_input, JOB_FORMATS, "jobs")
    except SlurmParseError as exc:
        raise SlurmParseError(exc.reason, source=source, text=exc.text) from None
    tz = zone(timezone)
    return _jobs(source_input, fmt, cluster_name, source, errors, slurm_version, tz)


def _jobs(
    source_input: Input,
    fmt: str,
    cluster_name: str,
    source: str,
    errors: list[SlurmParseError] | None,
    slurm_version: str | None,
    tz: Any,
) -> Iterator[Job]:
    if fmt == "psv":
        yield from parse_sacct_psv(
            source_input.lines(),
            cluster_name=cluster_name,
            source=source,
            errors=errors,
            timezone=tz,
        )
    elif fmt == "json":
        yield from parse_sacct_json(
            source_input.chunks(),
            cluster_name=cluster_name,
            source=source,
            errors=errors,
            slurm_version=slurm_version,
        )
    else:
        yield from parse_squeue_json(
            source_input.chunks(),
            cluster_name=cluster_name,
            source=source,
            errors=errors,
            slurm_version=slurm_version,
        )


def parse_nodes(
    data: Iterable[str] | Iterable[bytes] | BinaryIO,
    *,
    fmt: str,
    cluster_name: str,
    source: str = "<input>",
    errors: list[SlurmParseError] | None = None,
    slurm_version: str | None = None,
    timezone: str = "UTC",
) -> Iterator[Node]:
    """The nodes of a report, one at a time (see :func:`parse_jobs` for the arguments)."""
    source_input = Input(data)
    try:
        fmt = _resolve(fmt, source_input, NODE_FORMATS, "nodes")
    except SlurmParseError as exc:
        raise SlurmParseError(exc.reason, source=source, text=exc.text) from None
    tz = zone(timezone)
    return _nodes(source_input, fmt, cluster_name, source, errors, tz)


def _nodes(
    source_input: Input,
    fmt: str,
    cluster_name: str,
    source: str,
    errors: list[SlurmParseError] | None,
    tz: Any,
) -> Iterator[Node]:
    if fmt == "sinfo-json":
        yield from parse_sinfo_json(
            source_input.chunks(), cluster_name=cluster_name, source=source, errors=errors
        )
    elif fmt == "sinfo-psv":
        yield from parse_sinfo_psv(
            source_input.lines(),
            cluster_name=cluster_name,
            source=source,
            errors=errors,
            timezone=tz,
        )
    else:
        yield from parse_scontrol_nodes(
            source_input.lines(),
            cluster_name=cluster_name,
            source=source,
            errors=errors,
            timezone=tz,
        )
