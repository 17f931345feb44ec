"""Slurm's value formats, shared by every parser.

Each function states the grammar it reads. They raise ``ValueError`` on text
they cannot read; the record parsers turn that into a
:class:`~slurm_state.parsers.SlurmParseError` naming the line. Empty values and
Slurm's placeholders (``Unknown``, ``None``, ``N/A``, ``(null)``) become ``None``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

#: Text Slurm prints for "no value".
EMPTY: frozenset[str] = frozenset({"", "Unknown", "None", "N/A", "(null)", "n/a", "none"})

#: Numeric sentinels that leak into JSON and text output: NO_VAL/INFINITE at 32
#: and 64 bits, and the signed forms (-1, -2) some serializers print.
SENTINELS: frozenset[int] = frozenset(
    {
        0xFFFFFFFE,
        0xFFFFFFFF,
        0xFFFFFFFFFFFFFFFE,
        0xFFFFFFFFFFFFFFFF,
        0x7FFFFFFFFFFFFFFE,
        -1,
        -2,
    }
)
#: NO_VAL16/INFINITE16, only for fields Slurm keeps in 16 bits (node CPU counts, ...):
#: 65534 is a perfectly good job id.
SENTINELS16: frozenset[int] = frozenset({0xFFFE, 0xFFFF})

#: Durations Slurm prints for "no limit".
_UNLIMITED = frozenset({"UNLIMITED", "INFINITE", "Partition_Limit", "INVALID", "NONE"})

_MEMORY_UNITS: dict[str, float] = {
    "": 1.0,
    "K": 1 / 1024,
    "M": 1.0,
    "G": 1024.0,
    "T": 1024.0**2,
    "P": 1024.0**3,
}
_MEMORY = re.compile(r"^(\d+(?:\.\d*)?)([KMGTP]?)([nc]?)$", re.IGNORECASE)


# --------------------------------------------------------------------------- durations


def parse_duration(text: str | None) -> float | None:
    """Seconds of a Slurm duration, ``None`` for empty or unlimited.

    Grammar (``sacct`` Elapsed/TotalCPU/Timelimit, ``scontrol`` RunTime)::

        duration := [days "-"] clock
        clock    := hours ":" minutes ":" seconds | minutes ":" seconds | hours (after "days-")
        seconds  := digits ["." digits]          (TotalCPU prints ``00:00.003``)

    A bare number is minutes, as ``sbatch --time`` reads it.
    """
    if text is None:
        return None
    text = text.strip()
    if text in EMPTY or text in _UNLIMITED:
        return None
    days = 0
    if "-" in text:
        day_text, _, text = text.partition("-")
        if not day_text.isdigit():
            raise ValueError(f"bad duration days {day_text!r}")
        days = int(day_text)
        parts = text.split(":")
        if len(parts) == 1:  # days-hours
            parts = [parts[0], "0", "0"]
        elif len(parts) == 2:  # days-hours:minutes
            parts = [parts[0], parts[1], "0"]
    else:
        parts = text.split(":")
        if len(parts) == 1:  # minutes
            parts = ["0", parts[0], "0"]
        elif len(parts) == 2:  # minutes:seconds
            parts = ["0", parts[0], parts[1]]
    if len(parts) != 3:
        raise ValueError(f"bad duration {text!r}")
    hours_text, minutes_text, seconds_text = parts
    if not (hours_text.isdigit() and minutes_text.isdigit()):
        raise ValueError(f"bad duration {text!r}")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"bad duration {text!r}") from None
    if seconds < 0 or not seconds_text[:1].isdigit():
        raise ValueError(f"bad duration {text!r}")
    total = ((days * 24 + int(hours_text)) * 60 + int(minutes_text)) * 60 + seconds
    return total


def parse_minutes(text: str | None) -> int | None:
    """A time limit in whole minutes (``TimelimitRaw`` ``10`` or ``Timelimit`` ``00:10:00``)."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    seconds = parse_duration(text)
    return None if seconds is None else int(seconds // 60)


def format_duration(seconds: int) -> str:
    """Slurm's form of a whole number of seconds: ``[D-]HH:MM:SS``."""
    if seconds < 0:
        raise ValueError("negative duration")
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


# --------------------------------------------------------------------------- memory


def parse_memory(text: str | None, *, default_unit: str = "M") -> tuple[float | None, str | None]:
    """Megabytes of a Slurm memory size and what it is counted per.

    Grammar: ``number [unit] [per]`` with unit in K, M, G, T, P (powers of 1024;
    none = ``default_unit``) and per ``n`` (per node) or ``c`` (per CPU), as
    ``ReqMem`` printed it before 21.08 (``4000Mn``, ``2Gc``). Returns
    ``(mb, "node" | "cpu" | None)``; ``(None, None)`` for an empty value.
    """
    if text is None:
        return None, None
    text = text.strip()
    if text in EMPTY or text.endswith("?"):
        # "16?": what 22.05's sacct prints for a job whose accounting record is
        # still a placeholder (seconds after it ends); the next scrape has it.
        return None, None
    match = _MEMORY.match(text)
    if match is None:
        raise ValueError(f"bad memory size {text!r}")
    number, unit, per = match.groups()
    factor = _MEMORY_UNITS[(unit or default_unit).upper()]
    mb = float(number) * factor
    per_of = {"n": "node", "c": "cpu"}.get(per.lower()) if per else None
    return mb, per_of


def parse_memory_mb(text: str | None, *, default_unit: str = "M") -> float | None:
    """Megabytes of a memory size, ignoring any per-node/per-CPU suffix."""
    return parse_memory(text, default_unit=default_unit)[0]


# --------------------------------------------------------------------------- TRES


def _tres_value(key: str, value: str) -> int | float | str:
    if key in ("mem", "vmem"):
        mb = parse_memory_mb(value)
        return 0 if mb is None else round(mb)
    if value.isdigit():
        return int(value)
    try:
        return float(value)
    except ValueError:
        return value


@functools.lru_cache(maxsize=4096)
def _parse_tres_cached(text: str) -> tuple[tuple[str, int | float | str], ...]:
    items: list[tuple[str, int | float | str]] = []
    for part in text.split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"bad TRES item {part!r}")
        items.append((key, _tres_value(key, value)))
    return tuple(items)


def parse_tres(text: str | None) -> dict[str, Any]:
    """A TRES string as a dict, memory in MB.

    Grammar: ``item ("," item)*`` with ``item := type["/"name[":"kind]] "=" count``,
    e.g. ``cpu=4,mem=16G,node=1,billing=4,gres/gpu=2,gres/gpu:a100=2``. ``mem``
    and ``vmem`` become whole megabytes; other counts stay numbers.
    """
    if text is None:
        return {}
    text = text.strip()
    if text in EMPTY:
        return {}
    return dict(_parse_tres_cached(text))


def format_tres(tres: dict[str, Any]) -> str:
    """The TRES string of a dict (memory written in M), for fixtures and round trips."""
    out = []
    for key, value in tres.items():
        out.append(f"{key}={value}M" if key in ("mem", "vmem") else f"{key}={value}")
    return ",".join(out)


def gpus_from_tres(tres: dict[str, Any]) -> tuple[int | None, str | None]:
    """``(num_gpus, gpu_type)`` of a TRES dict: ``gres/gpu`` and ``gres/gpu:<type>``.

    The count is ``gres/gpu`` (Slurm always records it next to the typed ones),
    else the sum of the typed counts; the type is the typed key's, several types
    joined with ``,``. ``(0, None)`` when the dict has no GPU.
    """
    total = tres.get("gres/gpu")
    types: list[str] = []
    typed_sum = 0
    for key, value in tres.items():
        if key.startswith("gres/gpu:"):
            types.append(key[9:])
            if isinstance(value, int):
                typed_sum += value
    if not isinstance(total, int):
        total = typed_sum
    return total, (",".join(sorted(types)) if types else None)


_GRES_ITEM = re.compile(r"^(?:gres[:/])?([^:()]+)(?::([^:()]+))?(?::(\d+))?(?:\(.*\))?$")


def parse_gres(text: str | None) -> list[tuple[str, str | None, int]]:
    """The items of a node or job GRES string: ``[(name, type, count)]``.

    Grammar: ``item ("," item)*`` with ``item := ["gres:"] name [":" type] [":" count]
    ["(" detail ")"]``, e.g. ``gpu:a100:4``, ``gpu:fake:0(IDX:N/A)``, ``gpu:2(S:0-1)``.
    A missing count is 1 (``gpu:a100`` is not emitted by Slurm, but a bare name is).
    """
    if text is None:
        return []
    text = text.strip()
    if text in EMPTY:
        return []
    out: list[tuple[str, str | None, int]] = []
    for part in _split_outside_parens(text):
        match = _GRES_ITEM.match(part.strip())
        if match is None:
            raise ValueError(f"bad GRES item {part!r}")
        name, kind, count = match.groups()
        if count is None and kind is not None and kind.isdigit():
            kind, count = None, kind
        out.append((name, kind, int(count) if count is not None else 1))
    return out


def _split_outside_parens(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def gpus_from_gres(text: str | None) -> tuple[int | None, str | None]:
    """``(num_gpus, gpu_type)`` of a GRES string; ``(None, None)`` when it names no GPU."""
    items = [(kind, count) for name, kind, count in parse_gres(text) if name == "gpu"]
    if not items:
        return None, None
    types = sorted({kind for kind, _ in items if kind})
    return sum(count for _, count in items), (",".join(types) if types else None)


# --------------------------------------------------------------------------- times


@functools.lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The time zone of a cluster (``UTC`` fast path)."""
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_timestamp(text: str | None, tz: tzinfo = UTC) -> datetime | None:
    """A Slurm timestamp (``2026-11-21T10:00:00``, local time ``tz``) as an aware UTC datetime.

    ``Unknown``, ``None``, ``N/A`` and empty become ``None``. An explicit offset
    in the text wins over ``tz``.
    """
    if text is None:
        return None
    if text in EMPTY:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad timestamp {text!r}") from None
    if moment.tzinfo is None:
        if tz is UTC:
            return moment.replace(tzinfo=UTC)
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def from_epoch(value: Any) -> datetime | None:
    """An epoch-seconds JSON value as an aware UTC datetime; 0 and sentinels become ``None``."""
    seconds = json_number(value)
    if seconds is None or seconds <= 0 or seconds in SENTINELS or seconds >= 2**40:
        return None
    return datetime.fromtimestamp(seconds, UTC)


# --------------------------------------------------------------------------- exit codes, states


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` of sacct's ``code:signal``; a signal of 0 becomes ``None``."""
    if text is None or text in EMPTY:
        return None, None
    code, sep, sig = text.partition(":")
    if not code.isdigit() or (sep and not sig.isdigit()):
        raise ValueError(f"bad exit code {text!r}")
    signal = int(sig) if sep else 0
    return int(code), (signal or None)


def decode_wait_status(status: int | None) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` of a raw wait status as ``squeue --json`` reports it.

    768 -> (3, None): exited with 3; 15 -> (0, 15): killed by SIGTERM; 256 -> (1, None).
    """
    if status is None or status in SENTINELS or status < 0:
        return None, None
    signal = status & 0x7F
    return (status >> 8) & 0xFF, (signal or None)


_STATE = re.compile(r"^([A-Z_]+)(?: by (\d+))?")


def parse_job_state(text: str) -> tuple[str, int | None]:
    """``(base_state, cancelled_by)`` of sacct's State (``CANCELLED by 1002`` -> CANCELLED, 1002).

    squeue's compound forms (``COMPLETING+``, ``RUNNING,REQUEUED``) keep their first state.
    """
    match = _STATE.match(text.strip().upper().replace(" BY ", " by "))
    if match is None:
        raise ValueError(f"bad job state {text!r}")
    by = match.group(2)
    return match.group(1), (int(by) if by is not None else None)


# --------------------------------------------------------------------------- JSON numbers


def json_number(value: Any) -> Any:
    """A JSON number in any schema version: plain (v0.0.38) or wrapped (v0.0.39+).

    ``{"set": true, "infinite": false, "number": 5}`` -> 5; not set, or infinite
    -> ``None``; Slurm's sentinels -> ``None``; ``None`` stays ``None``.
    """
    if type(value) is int:  # the common case first: this runs ~40 times per job
        return None if value in SENTINELS else value
    if value is None:
        return None
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        value = value.get("number")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in SENTINELS:
        return None
    return value


def json_int16(value: Any) -> int | None:
    """:func:`json_int` of a 16-bit field, whose sentinels are NO_VAL16/INFINITE16."""
    number = json_int(value)
    return None if number in SENTINELS16 else number


def json_int(value: Any) -> int | None:
    """:func:`json_number` as an int (``None`` for anything else)."""
    if type(value) is int:
        return None if value in SENTINELS else value
    number = json_number(value)
    if isinstance(number, bool) or number is None:
        return None
    if isinstance(number, int):
        return number
    if isinstance(number, float):
        return int(number)
    if isinstance(number, str) and number.lstrip("-").isdigit():
        return json_int(int(number))
    return None


def text_or_none(value: Any) -> str | None:
    """A string field with Slurm's empty placeholders as ``None``."""
    if value is None:
        return None
    text = str(value)
    return None if text in EMPTY else text


def clip01(value: float | None) -> float | None:
    """A ratio clipped to 0..1 (``None`` stays ``None``)."""
    if value is None or value != value:  # NaN
        return None
    return 0.0 if value < 0 else 1.0 if value > 1 else value
