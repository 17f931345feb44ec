"""Node state normalization, shared by the sinfo and scontrol parsers.

Slurm stores a base state plus flags (``UNKNOWN+DRAIN+NOT_RESPONDING``) and
prints a derived name (``drained*``). Every parser returns the same pair:
``state`` is the name sinfo would print (lower case, DRAIN folded in as
``drained``/``draining``, as ``node_state_string`` does) and ``state_flags``
the upper-case flags, so a drained node reads the same whatever the format.
"""

from __future__ import annotations

from collections.abc import Iterable

#: sinfo's short state names (``%t``) -> the long ones (``%T``).
SHORT_STATES: dict[str, str] = {
    "alloc": "allocated",
    "comp": "completing",
    "drain": "drained",
    "drng": "draining",
    "fail": "fail",
    "failg": "failing",
    "futr": "future",
    "inval": "inval",
    "maint": "maint",
    "mix": "mixed",
    "npc": "perfctrs",
    "plnd": "planned",
    "pow_dn": "power_down",
    "powered_down": "powered_down",
    "powering_down": "powering_down",
    "pow_up": "powering_up",
    "boot": "reboot_requested",
    "resv": "reserved",
    "unk": "unknown",
}

#: sinfo's state suffixes -> flags.
SUFFIX_FLAGS: dict[str, str] = {
    "*": "NOT_RESPONDING",
    "~": "POWERED_DOWN",
    "#": "POWERING_UP",
    "%": "POWERING_DOWN",
    "!": "POWER_DOWN",
    "$": "MAINTENANCE",
    "@": "REBOOT_REQUESTED",
    "^": "REBOOT_ISSUED",
    "-": "PLANNED",
}


def normalize_node_state(base: str, flags: Iterable[str]) -> tuple[str, list[str]]:
    """``(state, state_flags)`` from a base state and flags, any case.

    DRAIN on an allocated/mixed/completing node is ``draining``, otherwise
    ``drained`` (even on a down or unknown node, as sinfo prints it).
    """
    flag_list: list[str] = []
    for flag in flags:
        upper = flag.strip().upper()
        if upper and upper not in flag_list:
            flag_list.append(upper)
    state = base.strip().lower() or "unknown"
    state = SHORT_STATES.get(state, state)
    if state in ("drained", "draining") and "DRAIN" not in flag_list:
        flag_list.insert(0, "DRAIN")
    if "DRAIN" in flag_list:
        busy = (
            state in ("allocated", "mixed", "completing", "draining") or "COMPLETING" in flag_list
        )
        state = "draining" if busy else "drained"
    return state, flag_list


def split_state_text(text: str) -> tuple[str, list[str]]:
    """A printed state: ``UNKNOWN+DRAIN+NOT_RESPONDING`` (scontrol) or ``drained*`` (sinfo)."""
    text = text.strip()
    if "+" in text:
        base, *flags = text.split("+")
        return normalize_node_state(base, flags)
    flags = []
    while text and text[-1] in SUFFIX_FLAGS:
        flags.append(SUFFIX_FLAGS[text[-1]])
        text = text[:-1]
    return normalize_node_state(text, flags)
