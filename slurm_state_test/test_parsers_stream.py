"""Streaming and robustness: bounded memory, laziness, and bad records never stop a parse."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurm_state.parsers import (
    SACCT_DELIMITER,
    SACCT_FIELDS,
    SINFO_FORMAT,
    SlurmParseError,
    detect_format,
    parse_jobs,
    parse_nodes,
)

FIXTURES = Path(__file__).parent / "fixtures" / "22.05"
WIDE = (FIXTURES / "sacct-wide.psv").read_text().splitlines()
SACCT_JSON = (FIXTURES / "sacct.json").read_text()
JOB_IDS = {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13}


def _ids(lines: list[str], errors: list[SlurmParseError]) -> set[int]:
    return {j.job_id for j in parse_jobs(lines, fmt="psv", cluster_name="c", errors=errors)}


def test_bad_record_raises_without_an_errors_list() -> None:
    with pytest.raises(SlurmParseError) as info:
        list(parse_jobs([WIDE[0], "x|y"], fmt="psv", cluster_name="c", source="f.psv"))
    assert info.value.line_no == 2 and str(info.value).startswith("f.psv:2: ")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=1, max_value=len(WIDE)),
    garbage=st.text(st.characters(blacklist_characters="\n\r"), max_size=300),
)
def test_a_random_malformed_psv_line_never_stops_the_others(position: int, garbage: str) -> None:
    lines = [*WIDE[:position], garbage, *WIDE[position:]]
    errors: list[SlurmParseError] = []

    ids = _ids(lines, errors)

    assert ids >= JOB_IDS
    assert all(e.line_no == position + 1 for e in errors)


_GARBAGE = st.sampled_from(['"', "{", "}", ",,", "]", "tru", "\x00", "[", ":", '"x":'])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(min_value=0, max_value=len(SACCT_JSON) - 1), garbage=_GARBAGE)
def test_a_random_corruption_in_json_spares_the_other_jobs(offset: int, garbage: str) -> None:
    text = SACCT_JSON[:offset] + garbage + SACCT_JSON[offset:]
    starts = [SACCT_JSON.find(f'"job_id": {i},\n      "name"') for i in sorted(JOB_IDS)]
    jobs_start = SACCT_JSON.find('"jobs"')
    errors: list[SlurmParseError] = []

    try:
        ids = {
            j.job_id
            for j in parse_jobs(io.StringIO(text), fmt="json", cluster_name="c", errors=errors)
        }
    except SlurmParseError:
        pytest.fail("a corrupt job must be reported in errors, not raised")

    if offset <= SACCT_JSON.find("{", jobs_start):
        # a corrupt header, up to the first job's "{" (a "[" there nests every job
        # in one bad element): whatever happens, it was reported, not raised
        return
    # the job holding the corruption (and at worst its neighbour) may be lost; no other
    assert len(JOB_IDS - ids) <= 2, (ids, [str(e) for e in errors])
    assert starts


def _big_sacct_json(n: int) -> Iterator[bytes]:
    doc = json.loads(SACCT_JSON)
    proto = json.dumps(next(j for j in doc["jobs"] if j["job_id"] == 6), indent=2)
    yield b'{"meta": ' + json.dumps(doc["meta"]).encode() + b', "errors": [], "jobs": [\n'
    for i in range(1, n + 1):
        text = proto.replace('"job_id": 6', f'"job_id": {i}', 1)
        yield (("," if i > 1 else "") + text).encode()
    yield b"]}\n"


class _ChunkReader(io.RawIOBase):
    """A binary file over a generator: the document never exists whole in memory."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def test_sacct_json_streams_in_bounded_memory() -> None:
    n = 4000  # ~50 MB of JSON
    reader = io.BufferedReader(_ChunkReader(_big_sacct_json(n)), buffer_size=1 << 16)
    tracemalloc.start()
    try:
        count = 0
        for job in parse_jobs(reader, fmt="json", cluster_name="c"):
            count += 1
            assert job.job_id == count
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == n
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_psv_yields_before_the_input_ends() -> None:
    def lines() -> Iterator[str]:
        yield from WIDE[:6]  # jobs 1 and 2 with their steps, then job 3 (ends job 2)
        raise AssertionError("read past what was needed")

    jobs = parse_jobs(lines(), fmt="psv", cluster_name="c")
    assert [next(jobs).job_id, next(jobs).job_id] == [1, 2]


def test_fetcher_delimiter_and_headerless_report() -> None:
    header = SACCT_DELIMITER.join(SACCT_FIELDS)
    row = dict.fromkeys(SACCT_FIELDS, "")
    row.update(
        JobID="42",
        JobIDRaw="42",
        JobName="a|b",
        State="COMPLETED",
        ExitCode="0:0",
        Submit="2026-11-21T10:00:00",
    )
    line = SACCT_DELIMITER.join(row[f] for f in SACCT_FIELDS)
    for lines in ([header, line], [line]):
        assert detect_format("\n".join(lines).encode()) == "psv"
        (job,) = parse_jobs(lines, fmt="auto", cluster_name="c")
        assert (job.job_id, job.name) == (42, "a|b")


def test_sinfo_format_header_round_trip() -> None:
    sep = "\x1f"
    header = sep.join(
        [
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
        ]
    )
    line = sep.join(
        [
            "n1",
            "gpu*",
            "mixed",
            "8",
            "4/4/0/8",
            "64000",
            "1000",
            "3.5",
            "gpu:a100:2",
            "x,y",
            "2026-11-21T10:00:00",
            "root",
            "odd | reason\x1fwith separator",
        ]
    )
    assert SINFO_FORMAT.count(sep) == header.count(sep)
    (node,) = parse_nodes([header, line], fmt="auto", cluster_name="c")
    assert (node.name, node.state, node.alloc_cpus, node.partitions) == ("n1", "mixed", 4, ["gpu"])
    assert node.reason == "odd | reason\x1fwith separator" and node.features == ["x", "y"]
    assert node.cpu_load == 3.5 and node.num_gpus == 2


# --------------------------------------------------------------------------- nesting bound

#: (fixture, what it holds, format, the array's key)
JSON_REPORTS = [
    ("sacct.json", "jobs", "json", "jobs"),
    ("squeue-running.json", "jobs", "squeue-json", "jobs"),
    ("sinfo.json", "nodes", "sinfo-json", "nodes"),
]


def _parse(data: Any, kind: str, fmt: str, errors: list[SlurmParseError]) -> list[Any]:
    parse = parse_jobs if kind == "jobs" else parse_nodes
    return list(parse(data, fmt=fmt, cluster_name="c", errors=errors))


def _keys(records: list[Any]) -> list[Any]:
    return [getattr(r, "job_id", None) or r.name for r in records]


def _with_elements(name: str, key: str, added: dict[int, str]) -> str:
    """The fixture's document with more elements (position -> raw JSON text) in its array."""
    doc = json.loads((FIXTURES / name).read_text())
    texts = [json.dumps(e) for e in doc[key]]
    for position, element_text in sorted(added.items()):
        texts.insert(position, element_text)
    others = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items() if k != key)
    return "{" + others + f', "{key}": [' + ",\n".join(texts) + "]}"


def _nested(element: dict[str, Any], value_text: str) -> str:
    """``element`` (a real record, so that it looks like one) with an extra field."""
    return json.dumps(element)[:-1] + ', "extra": ' + value_text + "}"


@pytest.mark.parametrize(("name", "kind", "fmt", "key"), JSON_REPORTS)
@pytest.mark.parametrize(
    "value_text",
    [
        "[" * 64 + "]" * 64,  # 65 levels with the record: decodable, over the bound
        "[" * 3000 + "]" * 3000,  # too deep for the decoder (RecursionError before)
        '[{"s": "]}\\"]", "a": ' * 2000 + "1" + "}]" * 2000,  # brackets in strings, commas
    ],
    ids=["65-levels", "3000-levels", "3000-mixed"],
)
@pytest.mark.parametrize("detect", [False, True], ids=["fmt", "auto"])
def test_a_record_nested_too_deep_is_reported_and_skipped_the_others_kept(
    name: str, kind: str, fmt: str, key: str, value_text: str, detect: bool
) -> None:
    clean_errors: list[SlurmParseError] = []
    expected = _keys(_parse(io.BytesIO((FIXTURES / name).read_bytes()), kind, fmt, clean_errors))
    first = json.loads((FIXTURES / name).read_text())[key][0]
    at_the_bound = _nested(first, "[" * 63 + "]" * 63)  # 64 levels with the record: kept
    text = _with_elements(name, key, {0: at_the_bound, 3: _nested(first, value_text)})
    errors: list[SlurmParseError] = []

    records = _parse(io.BytesIO(text.encode()), kind, "auto" if detect else fmt, errors)

    assert _keys(records) == [expected[0], *expected] and not clean_errors
    assert len(errors) == 1 and f"{key}[3]: nested deeper than 64 levels" in str(errors[0])


@pytest.mark.parametrize("depth", [100, 3000])
def test_a_top_level_value_nested_too_deep_is_a_clear_error(depth: int) -> None:
    text = '{"meta": ' + "[" * depth + "]" * depth + ', "jobs": []}'
    errors: list[SlurmParseError] = []

    assert _parse(io.BytesIO(text.encode()), "jobs", "json", errors) == []
    assert len(errors) == 1 and "bad value of 'meta': nested deeper than 64" in str(errors[0])
    with pytest.raises(SlurmParseError, match="nested deeper"):
        list(parse_jobs(io.BytesIO(text.encode()), fmt="auto", cluster_name="c"))


# --------------------------------------------------------------------------- byte-order mark

BOM_REPORTS = [
    ("sacct-all.psv", "jobs", "psv"),
    ("sacct.json", "jobs", "json"),
    ("squeue-running.json", "jobs", "squeue-json"),
    ("sinfo.json", "nodes", "sinfo-json"),
    ("sinfo-N-wide.txt", "nodes", "sinfo-psv"),
    ("scontrol-show-node-oneliner.txt", "nodes", "scontrol"),
]


@pytest.mark.parametrize(("name", "kind", "fmt"), BOM_REPORTS)
@pytest.mark.parametrize("detect", [False, True], ids=["fmt", "auto"])
@pytest.mark.parametrize("given_as", ["binary file", "text lines"])
def test_a_byte_order_mark_changes_nothing(
    name: str, kind: str, fmt: str, detect: bool, given_as: str
) -> None:
    raw = (FIXTURES / name).read_bytes()
    errors: list[SlurmParseError] = []
    expected = [r.to_dict() for r in _parse(io.BytesIO(raw), kind, fmt, errors)]
    with_bom = "\ufeff".encode() + raw
    data: Any = (
        io.BytesIO(with_bom)
        if given_as == "binary file"
        else with_bom.decode("utf-8").splitlines()  # a text file read without utf-8-sig
    )

    records = _parse(data, kind, "auto" if detect else fmt, errors)

    assert not errors, [str(e) for e in errors]
    assert [r.to_dict() for r in records] == expected and expected
