"""``python -m slurm_state parse`` and ``anonymize``, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "22.05"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "slurm_state", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def documents(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_parse_prints_one_document_per_job() -> None:
    result = run("parse", "--cluster", "mila", str(FIXTURES / "sacct-wide.psv"))

    assert result.returncode == 0, result.stderr
    docs = documents(result.stdout)
    assert len(docs) == 11
    assert all(set(d) == {"slurm", "cw"} and d["cw"] == {} for d in docs)
    job4 = next(d["slurm"] for d in docs if d["slurm"]["job_id"] == 4)
    assert job4["cluster_name"] == "mila" and job4["exit_code"] == 3
    assert job4["start_time"] == "2026-11-21T10:12:17+00:00"


def test_parse_reports_skipped_records_and_exits_1() -> None:
    name = str(FIXTURES / "handmade-sacct-malformed.psv")
    result = run("parse", name)

    assert result.returncode == 1
    assert len(documents(result.stdout)) == 9
    reported = [line for line in result.stderr.splitlines() if line.startswith(f"{name}:")]
    assert [line.split(":")[1] for line in reported] == ["4", "5", "8", "10"]
    assert "4 record(s) skipped" in result.stderr


def test_parse_several_files_and_formats_and_stdin() -> None:
    result = run(
        "parse",
        str(FIXTURES / "sinfo.json"),
        str(FIXTURES / "scontrol-show-node-oneliner.txt"),
        "-",
        stdin=(FIXTURES / "sacct.json").read_bytes(),
    )

    assert result.returncode == 0, result.stderr
    docs = documents(result.stdout)
    assert len(docs) == 7 + 7 + 11
    big = [d["slurm"] for d in docs if d["slurm"].get("name") == "bigmem001"]
    assert [n["state"] for n in big] == ["drained", "drained"]


def test_parse_with_explicit_format_and_kind() -> None:
    result = run(
        "parse", "--kind", "nodes", "--format", "scontrol", str(FIXTURES / "scontrol-show-node.txt")
    )
    assert result.returncode == 0 and len(documents(result.stdout)) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["parse", "/no/such/file"], "cannot read"),
        (["parse", str(FIXTURES / "sdiag.txt")], "cannot tell the format"),
        (["parse", "--kind", "jobs", str(FIXTURES / "sinfo.json")], "holds nodes"),
        (["parse", "--timezone", "Nowhere/Land", str(FIXTURES / "sacct-wide.psv")], "time zone"),
        (["parse", "--format", "xml", "f"], "invalid choice"),
        (["parse"], "required"),
    ],
)
def test_usage_errors_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_anonymize_writes_a_shareable_fixture(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("secret-key\n")
    for name in ("sacct-wide.psv", "sacct.json"):
        out = tmp_path / f"anon-{name}"
        result = run("anonymize", "--key-file", str(key), str(FIXTURES / name), str(out))
        assert result.returncode == 0, result.stderr
        text = out.read_text()
        assert "alice" not in text and "timeout-job" not in text
        parsed = run("parse", str(out))
        assert parsed.returncode == 0 and len(documents(parsed.stdout)) == 11


def test_anonymize_refuses_without_key_or_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    no_key = run("anonymize", str(FIXTURES / "sacct.json"), str(out))
    assert no_key.returncode == 2 and "key" in no_key.stderr

    key = tmp_path / "key"
    key.write_text("k")
    bad = run(
        "anonymize",
        "--key-file",
        str(key),
        str(FIXTURES / "handmade-sacct-malformed.json"),
        str(out),
    )
    assert bad.returncode == 1 and "nothing written" in bad.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [key]
