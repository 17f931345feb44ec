"""The output-file API: listing, ranges, the size limit, and paths that try to escape."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.submissions.files import parse_range
from clockwork_web_test.submissions_fixtures import (
    ALICE,
    BOB,
    add_user,
    make_client,
    submit_config,
    token_headers,
)

ME = pwd.getpwuid(os.geteuid()).pw_name  # the files below belong to the test's own user


@pytest.fixture
def job(config: Config, db: Database[Any], tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "outputs"
    outdir = root / "run1"
    (outdir / "sub").mkdir(parents=True)
    stdout = root / "slurm-5.out"
    stdout.write_bytes(b"0123456789" * 3)
    (outdir / "metrics.csv").write_text("a,b\n1,2\n")
    (outdir / "sub" / "deep.txt").write_text("deep")
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (outdir / "escape").symlink_to(secret)
    (outdir / "escape_dir").symlink_to(tmp_path, target_is_directory=True)
    big = outdir / "big.bin"
    big.write_bytes(b"x" * 2048)
    cfg = submit_config(
        config,
        clusters={
            "testcluster": {
                "submit": {
                    "backend": "local",
                    "output_roots": [str(root)],
                    "max_file_bytes": 1024,
                }
            }
        },
    )
    add_user(db, ALICE, {"testcluster": ME})
    add_user(db, BOB, {"testcluster": "bob"})
    db.submissions.insert_one(
        {
            "uuid": "f-1",
            "user_email": ALICE,
            "cluster_name": "testcluster",
            "username": ME,
            "state": "COMPLETED",
            "job_id": 5,
            "cwd": str(root),
            "stdout": str(stdout),
            "stderr": str(stdout),
            "dirs": [str(outdir)],
            "created_at": datetime.now(UTC),
        }
    )
    _, client = make_client(cfg)
    return {
        "client": client,
        "alice": token_headers(db, ALICE),
        "bob": token_headers(db, BOB),
        "root": root,
        "outdir": outdir,
        "stdout": stdout,
        "secret": secret,
    }


def url(path: str) -> str:
    return "/api/v1/submissions/f-1/files/" + path.lstrip("/")


def test_lists_stdout_and_files_under_dirs_without_escapes(job: dict[str, Any]) -> None:
    r = job["client"].get("/api/v1/submissions/f-1/files", headers=job["alice"])
    assert r.status_code == 200
    listed = {f["path"]: (f["kind"], f["size"]) for f in r.json["files"]}
    out = job["outdir"]
    assert listed == {
        str(job["stdout"]): ("stdout", 30),
        str(out / "metrics.csv"): ("file", 8),
        str(out / "sub" / "deep.txt"): ("file", 4),
        str(out / "big.bin"): ("file", 2048),
    }
    assert job["client"].get("/api/v1/submissions/f-1/files", headers=job["bob"]).status_code == 404


def test_reads_whole_files_and_ranges(job: dict[str, Any]) -> None:
    client, h = job["client"], job["alice"]
    r = client.get(url(str(job["stdout"])), headers=h)
    assert r.status_code == 200 and r.data == b"0123456789" * 3
    assert r.headers["Accept-Ranges"] == "bytes"
    r = client.get(url("stdout"), headers={**h, "Range": "bytes=2-5"})
    assert r.status_code == 206 and r.data == b"2345"
    assert r.headers["Content-Range"] == "bytes 2-5/30"
    r = client.get(url("stdout"), headers={**h, "Range": "bytes=-3"})
    assert r.status_code == 206 and r.data == b"789"
    r = client.get(url("stdout") + "?tail=4", headers=h)
    assert r.status_code == 206 and r.data == b"6789"
    r = client.get(url("stdout"), headers={**h, "Range": "bytes=28-"})
    assert r.data == b"89"
    r = client.get(url("stdout"), headers={**h, "Range": "bytes=30-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */30"
    r = client.get(url(str(job["outdir"] / "sub" / "deep.txt")), headers=h)
    assert r.data == b"deep"


def test_size_limit(job: dict[str, Any]) -> None:
    client, h = job["client"], job["alice"]
    big = str(job["outdir"] / "big.bin")
    r = client.get(url(big), headers=h)
    assert r.status_code == 413 and "Range" in r.json["error"]["message"]
    r = client.get(url(big), headers={**h, "Range": "bytes=0-"})
    assert r.status_code == 206 and len(r.data) == 1024
    assert r.headers["Content-Range"] == "bytes 0-1023/2048"


@pytest.mark.parametrize(
    "path",
    [
        "{outdir}/../../secret.txt",
        "{outdir}/%2e%2e/%2e%2e/secret.txt",
        "{outdir}/escape",
        "{outdir}/escape_dir/secret.txt",
        "{outdir}",
        "/etc/passwd",
        "{root}/other.txt",
    ],
)
def test_paths_never_leave_the_jobs_directories(job: dict[str, Any], path: str) -> None:
    (job["root"] / "other.txt").write_text("not part of the job")
    target = path.format(outdir=job["outdir"], root=job["root"])
    r = job["client"].get(url(target), headers=job["alice"])
    assert r.status_code in (403, 404), r.data
    assert b"not yours" not in r.data and b"root:" not in r.data


def test_files_of_another_owner_are_refused(job: dict[str, Any]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    other = job["outdir"] / "theirs.txt"
    other.write_text("theirs")
    os.chown(other, 65534, 65534)
    r = job["client"].get(url(str(other)), headers=job["alice"])
    assert r.status_code == 403


def test_parse_range() -> None:
    assert parse_range(None, 10, 100) == (0, 9, False)
    assert parse_range("bytes=1-", 10, 100) == (1, 9, True)
    assert parse_range("bytes=-20", 10, 100) == (0, 9, True)
    assert parse_range("bytes=0-99", 10, 4) == (0, 3, True)
    assert parse_range("items=1-2", 10, 100) == (0, 9, False)  # not bytes: the whole file
