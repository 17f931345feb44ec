"""Slurm hostlist expressions: ``node[001-003,007],gpu01`` <-> node names.

Grammar (as Slurm prints it)::

    hostlist := item ("," item)*
    item     := prefix ("[" ranges "]" suffix?)*
    ranges   := range ("," range)*
    range    := digits ("-" digits)?

Only one bracket group per item is expanded, which covers every name Slurm
emits for nodes. Leading zeros are kept (``001-003`` -> ``001 002 003``).
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"([^,\[]*)(?:\[([^\]]*)\])?([^,\[]*)")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")

#: Refuse to expand absurd ranges (a corrupt report must not eat the memory).
MAX_HOSTS = 100_000


class HostlistError(ValueError):
    """A hostlist expression that cannot be expanded."""


def expand(expression: str | None) -> list[str]:
    """The node names of a hostlist expression, in order, without duplicates."""
    if not expression or expression in ("None assigned", "(null)"):
        return []
    names: list[str] = []
    seen: set[str] = set()
    pos = 0
    text = expression.strip()
    while pos < len(text):
        match = _ITEM.match(text, pos)
        if match is None or match.end() == pos:
            raise HostlistError(f"cannot read hostlist {expression!r} at {pos}")
        prefix, ranges, suffix = match.groups()
        if ranges is None:
            candidates = [prefix + suffix] if prefix + suffix else []
        else:
            candidates = []
            for part in ranges.split(","):
                rmatch = _RANGE.match(part.strip())
                if rmatch is None:
                    raise HostlistError(f"bad range {part!r} in hostlist {expression!r}")
                lo, hi = rmatch.group(1), rmatch.group(2) or rmatch.group(1)
                if int(hi) < int(lo) or int(hi) - int(lo) > MAX_HOSTS:
                    raise HostlistError(f"bad range {part!r} in hostlist {expression!r}")
                width = len(lo)
                candidates.extend(
                    f"{prefix}{n:0{width}d}{suffix}" for n in range(int(lo), int(hi) + 1)
                )
        for name in candidates:
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) > MAX_HOSTS:
                    raise HostlistError(f"hostlist {expression!r} is too long")
        pos = match.end()
        if pos < len(text):
            if text[pos] != ",":
                raise HostlistError(f"cannot read hostlist {expression!r} at {pos}")
            pos += 1
    return names
