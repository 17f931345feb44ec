"""Slurm value formats: tables of real values, and properties with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slurm_state.parsers._nodes import split_state_text
from slurm_state.parsers.values import (
    decode_wait_status,
    format_duration,
    format_tres,
    gpus_from_gres,
    gpus_from_tres,
    json_int,
    json_int16,
    json_number,
    parse_duration,
    parse_exit_code,
    parse_gres,
    parse_job_state,
    parse_memory,
    parse_minutes,
    parse_timestamp,
    parse_tres,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:01:24", 84),
        ("1-02:03:04", 93784),
        ("2-00:00:00", 172800),
        ("00:00.003", 0.003),
        ("01:02", 62),
        ("10", 600),
        ("1-02", 93600),
        ("1-02:03", 93780),
        ("UNLIMITED", None),
        ("Partition_Limit", None),
        ("", None),
        ("INVALID", None),
    ],
)
def test_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("text", ["1:2:3:4", "a:00", "1-x", "-5", "00:-1"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_duration_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "minutes"), [("10", 10), ("00:10:00", 10), ("2-00:00:00", 2880), ("UNLIMITED", None)]
)
def test_minutes(text: str, minutes: int | None) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize(
    ("text", "mb", "per"),
    [
        ("16G", 16384, None),
        ("4000M", 4000, None),
        ("4000Mn", 4000, "node"),
        ("2Gc", 2048, "cpu"),
        ("3324K", 3324 / 1024, None),
        ("62.50G", 64000, None),
        ("1T", 1048576, None),
        ("256", 256, None),
        ("", None, None),
    ],
)
def test_memory(text: str, mb: float | None, per: str | None) -> None:
    value, per_of = parse_memory(text)
    assert value == (pytest.approx(mb) if mb is not None else None)
    assert per_of == per


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(["K", "M", "G", "T"]))
def test_memory_units_scale(number: int, unit: str) -> None:
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[unit]
    assert parse_memory(f"{number}{unit}")[0] == pytest.approx(number * factor)


def test_tres() -> None:
    tres = parse_tres("cpu=4,mem=16G,node=1,billing=4,gres/gpu=2,gres/gpu:a100=2")

    assert tres == {
        "cpu": 4,
        "mem": 16384,
        "node": 1,
        "billing": 4,
        "gres/gpu": 2,
        "gres/gpu:a100": 2,
    }
    assert gpus_from_tres(tres) == (2, "a100")
    assert gpus_from_tres(parse_tres("cpu=1,mem=256M")) == (0, None)
    assert gpus_from_tres(parse_tres("gres/gpu:v100=1,gres/gpu:a100=2")) == (3, "a100,v100")
    assert parse_tres("") == {}


@pytest.mark.parametrize("text", ["cpu", "=4", "cpu=1,,=2"])
def test_bad_tres(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tres(text)


_TRES_KEYS = st.sampled_from(["cpu", "node", "billing", "gres/gpu", "gres/gpu:a100", "energy"])


@given(
    st.dictionaries(_TRES_KEYS, st.integers(min_value=0, max_value=10**6)),
    st.integers(min_value=0, max_value=10**7),
)
def test_tres_round_trip(counts: dict[str, int], mem: int) -> None:
    tres = {**counts, "mem": mem}
    assert parse_tres(format_tres(tres)) == tres


@pytest.mark.parametrize(
    ("text", "items", "gpus"),
    [
        ("gpu:a100:4", [("gpu", "a100", 4)], (4, "a100")),
        ("gpu:fake:0(IDX:N/A)", [("gpu", "fake", 0)], (0, "fake")),
        ("gpu:2(S:0-1)", [("gpu", None, 2)], (2, None)),
        ("gpu:a100:2,gpu:v100:1,mps:100", None, (3, "a100,v100")),
        ("gres:gpu:fake:1", [("gpu", "fake", 1)], (1, "fake")),
        ("(null)", [], (None, None)),
    ],
)
def test_gres(text: str, items: list | None, gpus: tuple) -> None:
    if items is not None:
        assert parse_gres(text) == items
    assert gpus_from_gres(text) == gpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10, tzinfo=UTC)),
        ("Unknown", None),
        ("None", None),
        ("", None),
    ],
)
def test_timestamp(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_timestamp_in_a_cluster_time_zone() -> None:
    moment = parse_timestamp("2026-07-01T10:00:00", ZoneInfo("Europe/Paris"))
    assert moment == datetime(2026, 7, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3:0", (3, None)), ("0:15", (0, 15)), ("0:0", (0, None)), ("", (None, None))],
)
def test_exit_code(text: str, expected: tuple) -> None:
    assert parse_exit_code(text) == expected


@pytest.mark.parametrize(
    ("status", "expected"), [(768, (3, None)), (15, (0, 15)), (256, (1, None)), (0, (0, None))]
)
def test_wait_status(status: int, expected: tuple) -> None:
    assert decode_wait_status(status) == expected


@given(st.integers(0, 255), st.integers(0, 127))
def test_wait_status_property(code: int, signal: int) -> None:
    status = signal if signal else code << 8
    assert decode_wait_status(status) == ((0, signal) if signal else (code, None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CANCELLED by 1002", ("CANCELLED", 1002)),
        ("CANCELLED by 0", ("CANCELLED", 0)),
        ("COMPLETED", ("COMPLETED", None)),
        ("OUT_OF_MEMORY", ("OUT_OF_MEMORY", None)),
    ],
)
def test_job_state(text: str, expected: tuple) -> None:
    assert parse_job_state(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (4294967294, None),
        (-2, None),
        ({"set": True, "infinite": False, "number": 5}, 5),
        ({"set": False, "infinite": False, "number": 0}, None),
        ({"set": True, "infinite": True, "number": 0}, None),
        (None, None),
        (65534, 65534),  # a valid job id; NO_VAL16 only for 16-bit fields
    ],
)
def test_json_numbers(value: object, expected: object) -> None:
    assert json_number(value) == expected
    assert json_int(value) == expected


def test_json_16_bit_sentinels() -> None:
    assert json_int16(65534) is None and json_int16(64) == 64


@pytest.mark.parametrize(
    ("text", "state", "flags"),
    [
        ("drained*", "drained", ["DRAIN", "NOT_RESPONDING"]),
        ("UNKNOWN+DRAIN+NOT_RESPONDING", "drained", ["DRAIN", "NOT_RESPONDING"]),
        ("MIXED+DRAIN", "draining", ["DRAIN"]),
        ("down*", "down", ["NOT_RESPONDING"]),
        ("idle~", "idle", ["POWERED_DOWN"]),
        ("IDLE", "idle", []),
        ("mix", "mixed", []),
    ],
)
def test_node_states(text: str, state: str, flags: list[str]) -> None:
    assert split_state_text(text) == (state, flags)
