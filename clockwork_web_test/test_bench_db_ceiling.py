"""scripts/bench_db_ceiling.py on a small data set: it records what one request
of each bench_api case asks the database, and replays exactly that."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bson import json_util

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_db_ceiling.py"


def test_the_ceiling_replays_the_commands_a_request_sends() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--jobs",
            "400",
            "--users",
            "5",
            "--clients",
            "1",
            "--duration",
            "0.3",
            "--show-commands",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    assert [r["endpoint"] for r in results] == [
        "jobs list (user, state filter, 50/page)",
        "one job",
        "nodes list",
        "jobs list (admin, unfiltered, by submit time)",
    ]
    for result in results:
        assert result["rps"] > 0 and result["db_cpu_ms"] > 0, result
        assert result["min_mean_ms_c16"] == pytest.approx(16_000 / result["rps"], rel=0.01)

    shown: dict[str, list[dict]] = {}
    for line in done.stderr.splitlines():
        if line.count(" | ") == 2:
            case, _database, command = line.split(" | ")
            shown.setdefault(case, []).append(json_util.loads(command))
    user_list = shown["jobs list (user, state filter, 50/page)"]
    assert len(user_list) == results[0]["commands"]
    # the token's user first, then the student's completed jobs; no session fields
    assert user_list[0]["find"] == "users"
    jobs = [c for c in user_list if c.get("find") == "jobs"]
    assert jobs and jobs[0]["filter"]["cw.user"] == "student@example.org"
    assert jobs[0]["filter"]["cw.bucket"] == "COMPLETED"
    assert not any("lsid" in c or "$db" in c for commands in shown.values() for c in commands)
