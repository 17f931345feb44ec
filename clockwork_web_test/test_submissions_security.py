"""What a hostile user tries through submissions: directives, the server's environment, file races.

Each test here failed on the code before the fix it guards (issue #15,
findings 1, 2, 3, 9 and 10).
"""

from __future__ import annotations

import gc
import os
import pwd
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.errors import BadRequest, Forbidden, NotFound
from clockwork_web.submissions import files
from clockwork_web.submissions.backends import LocalBackend
from clockwork_web.submissions.task import check_directives, parse_task
from clockwork_web_test.submissions_fixtures import (
    ALICE,
    add_user,
    make_client,
    submit_config,
    token_headers,
)

ME = pwd.getpwuid(os.geteuid()).pw_name
#: Stand-ins for the web process's secrets (the names the README documents).
SERVER_SECRETS = {
    "CLOCKWORK_SECRET_KEY": "canary-secret-key-5b1f",
    "CLOCKWORK_OIDC_CLIENT_SECRET": "canary-oidc-secret-77aa",
    "MONGODB_URI": "mongodb://canary:pw@db.internal:27017",
}


@pytest.fixture
def cfg(config: Config) -> Config:
    return submit_config(config, clusters={"testcluster": {"submit": {"backend": "local"}}})


# --------------------------------------------------------------------------- finding 3


@pytest.mark.parametrize(
    "header",
    [
        "#SBATCH --nice=-10000",
        "#SBATCH --priority=TOP",
        "#SBATCH --nice -10000",
        "#SBATCH -p debug --uid=0",
        "#SBATCH --export=ALL,LD_PRELOAD=/tmp/x.so",
        "#SBATCH --time=forever",
        "#SBATCH -t",
        "# a comment first\n#SBATCH --exclusive",
        "#SBATCH --job-name=ok\n\n#SBATCH --reservation=maint",
        "#SBATCH\t--qos=normal --nice=-1",
        "#SBATCHX --nice=-1",
        "#SBATCH --comment='unclosed",
    ],
)
def test_directives_outside_the_allow_list_are_refused_with_400(
    cfg: Config, db: Database[Any], header: str
) -> None:
    add_user(db, ALICE, {"testcluster": ME})
    _, client = make_client(cfg)
    body = {"cluster": "testcluster", "script": f"#!/bin/bash\n{header}\nhostname\n"}
    r = client.post("/api/v1/submissions", json=body, headers=token_headers(db, ALICE))
    assert r.status_code == 400, r.json
    assert r.json["error"]["message"].startswith("script: line ")
    assert db.submissions.count_documents({}) == 0


def test_allowed_directives_and_lines_slurm_does_not_read_pass(cfg: Config) -> None:
    script = (
        "#!/bin/bash\n"
        "#SBATCH --job-name=train -p gpu\n"
        "#SBATCH -t 1:00:00 --mem=4G -c 2\n"
        "#SBATCH --gres=gpu:1 --array=1-4%2 -o out-%j.txt\n"
        "# a comment\n"
        "#PBS -l nice=-19\n"  # sbatch is always given --ignore-pbs
        "\n"
        "python train.py\n"
        "#SBATCH --nice=-10000\n"  # after the first command: sbatch ignores it
    )
    task = parse_task({"cluster": "testcluster", "script": script}, cfg)
    assert task.script.startswith("#!/bin/bash\n#SBATCH --job-name=train")
    check_directives("#!/bin/sh\nhostname\n#SBATCH --priority=TOP\n")


def test_directive_errors_say_which_line_and_option() -> None:
    with pytest.raises(BadRequest) as info:
        check_directives("#!/bin/bash\n#SBATCH -J ok\n#SBATCH --nice=-10000\n")
    assert info.value.message.startswith("script: line 3: '--nice' is not an allowed Slurm option")


# --------------------------------------------------------------------------- finding 1


def test_local_commands_run_with_the_users_environment_not_the_servers(
    cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner that starts sbatch, asked to run ``env``: what sbatch (hence the job) gets."""
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(cfg.clusters["testcluster"])
    out = backend._run(["env"], ME)
    job_env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for name, value in SERVER_SECRETS.items():
        assert name not in job_env and value not in out
    # the user's identity comes from the password database (the same as ours when ME is us)
    entry = pwd.getpwnam(ME)
    identity = {"HOME": entry.pw_dir, "USER": ME, "LOGNAME": ME, "SHELL": entry.pw_shell}
    assert {k: job_env.get(k) for k in identity} == identity
    leaked = {k for k, v in os.environ.items() if job_env.get(k) == v and k not in identity}
    assert not leaked, leaked


# --------------------------------------------------------------------------- findings 2, 9, 10


@pytest.fixture
def files_job(cfg: Config, db: Database[Any], tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "outputs"
    outdir = root / "run"
    outdir.mkdir(parents=True)
    (outdir / "result.txt").write_text("mine\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-NOT-YOURS\n")
    cluster = {"submit": {"backend": "local", "output_roots": [str(root)]}}
    files_cfg = submit_config(cfg, clusters={"testcluster": cluster})
    add_user(db, ALICE, {"testcluster": ME})
    db.submissions.insert_one(
        {
            "uuid": "sec-1",
            "user_email": ALICE,
            "cluster_name": "testcluster",
            "username": ME,
            "state": "COMPLETED",
            "job_id": 7,
            "cwd": str(root),
            "stdout": str(outdir / "slurm-7.out"),
            "stderr": None,
            "dirs": [str(outdir)],
            "created_at": datetime.now(UTC),
        }
    )
    _, client = make_client(files_cfg)
    return {
        "client": client,
        "config": files_cfg,
        "headers": token_headers(db, ALICE),
        "db": db,
        "root": root,
        "outdir": outdir,
        "secret": secret,
    }


def _url(path: str) -> str:
    return "/api/v1/submissions/sec-1/files/" + path.lstrip("/")


SWAPPER = """
import os, sys, time
target, secret, stop_after = sys.argv[1], sys.argv[2], float(sys.argv[3])
tmp_file, tmp_link = target + ".f", target + ".l"
end = time.monotonic() + stop_after
while time.monotonic() < end:
    with open(tmp_file, "w") as fh:
        fh.write("plain output\\n")
    os.replace(tmp_file, target)
    try:
        os.unlink(tmp_link)
    except FileNotFoundError:
        pass
    os.symlink(secret, tmp_link)
    os.replace(tmp_link, target)
"""


def test_a_file_swapped_for_a_symlink_never_leaks(files_job: dict[str, Any]) -> None:
    """A process swaps the job's stdout between a file and a link to a secret: 0 leaks.

    3,000 reads through the function the route calls (the route adds only
    authentication), then 200 through HTTP to see the answers are 200/403/404.
    """
    target = files_job["outdir"] / "slurm-7.out"
    target.write_text("plain output\n")
    doc = files_job["db"].submissions.find_one({"uuid": "sec-1"})
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(target), str(files_job["secret"]), "120"]
    )
    outcomes: dict[str, int] = {}
    leaks = 0
    try:
        for _ in range(3000):
            try:
                part = files.read_file(doc, "stdout", files_job["config"])
                data = b"".join(part.chunks)
                outcome = "served"
            except (Forbidden, NotFound) as exc:
                data, outcome = b"", type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            leaks += b"SECRET" in data
        client, headers = files_job["client"], files_job["headers"]
        statuses: dict[int, int] = {}
        for _ in range(200):
            r = client.get(_url("stdout"), headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            leaks += b"SECRET" in r.data
    finally:
        swapper.kill()
        swapper.wait()
    assert leaks == 0, (outcomes, statuses)
    assert outcomes.get("served") and outcomes.get("Forbidden"), outcomes  # the race did happen
    assert set(statuses) <= {200, 403, 404}, statuses  # never a 500 (ELOOP)


def test_a_read_never_streamed_leaves_no_descriptor_open(files_job: dict[str, Any]) -> None:
    """A HEAD, or a client gone before the body: the checked descriptor is closed all the same."""

    (files_job["outdir"] / "slurm-7.out").write_text("plain output\n")
    doc = files_job["db"].submissions.find_one({"uuid": "sec-1"})
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings():  # an unclosed file object says so when collected
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(50):
            files.read_file(doc, "stdout", files_job["config"])  # chunks never iterated
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) - before < 5


def test_links_anywhere_below_the_root_are_refused(files_job: dict[str, Any]) -> None:
    outdir = files_job["outdir"]
    (outdir / "link.txt").symlink_to(files_job["secret"])
    (outdir / "linkdir").symlink_to(files_job["secret"].parent, target_is_directory=True)
    client, headers = files_job["client"], files_job["headers"]
    assert client.get(_url(str(outdir / "result.txt")), headers=headers).data == b"mine\n"
    for path in (outdir / "link.txt", outdir / "linkdir" / "secret.txt"):
        r = client.get(_url(str(path)), headers=headers)
        assert r.status_code == 403 and b"SECRET" not in r.data, r.data
        assert "symbolic link" in r.json["error"]["message"]


def test_outside_paths_answer_the_same_whether_they_exist_or_not(
    files_job: dict[str, Any],
) -> None:
    client, headers = files_job["client"], files_job["headers"]
    answers = set()
    for path in (str(files_job["secret"]), str(files_job["secret"]) + ".missing"):
        r = client.get(_url(path), headers=headers)
        answers.add((r.status_code, r.json["error"]["message"]))
    assert answers == {(403, "this path is outside the job's files and directories")}


def test_files_need_the_account_the_user_still_holds(files_job: dict[str, Any]) -> None:
    client, headers, db = files_job["client"], files_job["headers"], files_job["db"]
    path = _url(str(files_job["outdir"] / "result.txt"))
    assert client.get(path, headers=headers).status_code == 200
    db.users.update_one({"email": ALICE}, {"$set": {"cluster_accounts": {}}})
    deadline = time.monotonic() + 5
    while client.get(path, headers=headers).status_code == 200:  # a worker may cache the user
        assert time.monotonic() < deadline, "still served after the account was removed"
        time.sleep(0.1)
    r = client.get(path, headers=headers)
    assert r.status_code == 403 and b"mine" not in r.data
    listing = client.get("/api/v1/submissions/sec-1/files", headers=headers)
    assert listing.status_code == 403


# --------------------------------------------------------------------------- finding 8, at submit time


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "https://example.org/hook", "disabled"),
        (
            {"notifications.webhook.allowed_url_prefixes": ["http://"]},
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        (
            {"notifications.webhook.allowed_url_prefixes": ["http://"]},
            "http://127.0.0.1:6379/",
            "127.0.0.1",
        ),
    ],
)
def test_webhooks_to_internal_addresses_are_refused_at_submit(
    config: Config, db: Database[Any], overrides: dict[str, Any], url: str, words: str
) -> None:
    cluster = {"testcluster": {"submit": {"backend": "local"}}}
    _, client = make_client(submit_config(config, clusters=cluster, **overrides))
    add_user(db, ALICE, {"testcluster": ME})
    body = {
        "cluster": "testcluster",
        "cmd": "true",
        "notification": {"methods": ["webhook"], "params": {"webhook": {"url": url}}},
    }
    r = client.post("/api/v1/submissions", json=body, headers=token_headers(db, ALICE))
    assert r.status_code == 400, r.json
    message = r.json["error"]["message"]
    assert message.startswith("notification.params.webhook.url: ") and words in message
    assert db.submissions.count_documents({}) == 0


# --------------------------------------------------------------------------- finding 12


def test_a_uuid_in_use_by_another_user_is_not_confirmed(
    config: Config, db: Database[Any], tmp_path: Path
) -> None:
    """uuids are unique per user: bob's answer tells him nothing about alice's submissions."""
    from clockwork_web_test.submissions_fixtures import BOB

    unreachable = {"backend": "slurmrestd", "jwt_key_file": str(tmp_path / "no-key")}
    cfg = submit_config(config, clusters={"testcluster": {"submit": unreachable}})
    add_user(db, ALICE, {"testcluster": ME})
    add_user(db, BOB, {"testcluster": ME})
    _, client = make_client(cfg)
    alice, bob = token_headers(db, ALICE), token_headers(db, BOB)
    db.submissions.insert_one(
        {
            "uuid": "shared-1",
            "user_email": ALICE,
            "cluster_name": "testcluster",
            "username": ME,
            "state": "COMPLETED",
            "job_id": 9,
            "created_at": datetime.now(UTC),
        }
    )
    fresh = {"cluster": "testcluster", "script": "#!/bin/bash\ntrue\n", "uuid": "never-used"}
    taken = {**fresh, "uuid": "shared-1"}
    answers = [
        client.post("/api/v1/submissions", json=body, headers=bob) for body in (fresh, taken)
    ]
    assert answers[0].status_code == answers[1].status_code == 202  # accepted, sent later
    assert client.get("/api/v1/submissions/shared-1", headers=alice).json["job_id"] == 9
    assert client.get("/api/v1/submissions/shared-1", headers=bob).json["user"] == BOB
    again = client.post("/api/v1/submissions", json=taken, headers=alice)
    assert again.status_code == 409  # her own uuid: the usual idempotency answer
