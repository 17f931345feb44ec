"""Live: submit through every backend to the real Slurm testbed, follow, cancel, read, notify.

One test, because the jobs share the 2-CPU node and the TIMEOUT job alone
takes 65-90 s: everything is submitted up front, then all of it is polled
together with one deadline. Backends: ``local`` (sbatch --uid as root),
``slurmrestd`` (a JWT minted from the testbed's key) and ``ssh`` (a real sshd
on loopback that lets alice in with a key). Notifications go through the real
pipeline: the scraper writes ``job_events``, the notifier delivers them to a
real SMTP server, RabbitMQ (when it runs here) and a local HTTP receiver.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web.notify.channels import SIGNATURE_HEADER, verify
from clockwork_web.notify.notifier import run_once
from clockwork_web.submissions import service
from clockwork_web.submissions.service import FINAL_STATES
from clockwork_web_test.submissions_fixtures import (
    ALICE,
    BOB,
    add_user,
    make_client,
    submit_config,
    token_headers,
)
from test_common.receivers import (  # noqa: F401  (fixtures)
    RABBITMQ_URL,
    HttpReceiver,
    RabbitQueue,
    SmtpServer,
    free_port,
    http_receiver,
    rabbitmq_unavailable,
    smtp_server,
    wait_for,
)
from test_common.slurm import JOBS_DIR, slurm_testbed  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_testbed")]

EVIL = "; rm -rf ~"
JWT_KEY = "/var/spool/slurm-ci/jwt_hs256.key"
REST_URL = "http://127.0.0.1:6820"
SECRET = "live-webhook-secret"
DEADLINE_S = 170.0
#: Stand-ins for the web process's secrets, which no job may see.
SERVER_SECRETS = {
    "CLOCKWORK_SECRET_KEY": "live-canary-secret-key",
    "CLOCKWORK_OIDC_CLIENT_SECRET": "live-canary-oidc-secret",
    "MONGODB_URI": "mongodb://canary:pw@db.internal:27017",
}
#: Variables a job may share with the web process by coincidence, not by leaking.
GENERIC_VARIABLES = frozenset({"LANG", "LANGUAGE", "LC_ALL", "TERM", "TZ", "SHLVL", "SHELL", "_"})
ASKED = {"environment": {"CW_ASKED": "yes"}}


@dataclass(frozen=True)
class UserSshd:
    port: int
    key_file: Path
    known_hosts: Path


@pytest.fixture
def alice_sshd() -> Iterator[UserSshd]:
    """A real sshd on loopback letting alice in with a key (UsePAM: her password is locked)."""
    if not Path("/usr/sbin/sshd").is_file() or os.geteuid() != 0:
        pytest.skip("needs root and /usr/sbin/sshd (openssh-server)")
    directory = Path(tempfile.mkdtemp(prefix="cw-sshd-"))
    os.chmod(directory, 0o711)  # noqa: S103 (sshd reads authorized_keys as alice)
    proc = None
    try:
        for name in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
                check=True,
                capture_output=True,
                timeout=30,
            )
        authorized = directory / "authorized_keys"
        shutil.copy(directory / "client.pub", authorized)
        os.chmod(authorized, 0o644)
        port = free_port()
        (directory / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nUsePAM yes\nStrictModes no\nAllowUsers alice bob\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = (directory / "sshd.log").open("wb")
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(directory / "sshd_config")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

        def answers() -> bool:
            import socket

            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.settimeout(0.5)
                    return sock.recv(8).startswith(b"SSH-")
            except OSError:
                return proc.poll() is not None

        wait_for(answers, timeout=20)
        assert proc.poll() is None, (directory / "sshd.log").read_text()
        key_type, key = (directory / "host.pub").read_text().split()[:2]
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key}\n")
        yield UserSshd(port, directory / "client", known_hosts)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory alice can write, under the testbed's shared job-output dir."""
    base = JOBS_DIR / f"cw-live-{uuid.uuid4().hex[:8]}"
    alice = pwd.getpwnam("alice")
    for sub in ("", "local", "rest", "ssh"):
        (base / sub).mkdir(mode=0o755)
        os.chown(base / sub, alice.pw_uid, alice.pw_gid)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_live_submit_follow_cancel_read_and_notify(
    config: Config,
    db: Database[Any],
    smtp_server: SmtpServer,  # noqa: F811 (fixture)
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
    alice_sshd: UserSshd,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slurm_state.scrape import scrape_cluster

    for name, value in SERVER_SECRETS.items():  # as in a production web process
        monkeypatch.setenv(name, value)

    rabbit_reason = rabbitmq_unavailable()
    rabbit = None if rabbit_reason else RabbitQueue(RABBITMQ_URL, f"cw.live.{uuid.uuid4().hex[:8]}")
    rest_submit = {
        "backend": "slurmrestd",
        "rest_url": REST_URL,
        "jwt_key_file": JWT_KEY,
        "output_roots": [str(workdir)],
    }
    clusters = {
        "testcluster": {"submit": {"backend": "local", "output_roots": [str(workdir)]}},
        # the same Slurm through slurmrestd, but at a closed port: unreachable
        "restlater": {"submit": {**rest_submit, "rest_url": f"http://127.0.0.1:{free_port()}"}},
        "viarest": {
            "submit": {
                "backend": "slurmrestd",
                "rest_url": REST_URL,
                "jwt_key_file": JWT_KEY,
                "output_roots": [str(workdir)],
            }
        },
        "viassh": {
            "ssh": {
                "host": "127.0.0.1",
                "port": alice_sshd.port,
                "user": "alice",
                "key_file": str(alice_sshd.key_file),
                "known_hosts": str(alice_sshd.known_hosts),
            },
            "submit": {"backend": "ssh"},
        },
    }
    notifications = {
        "notifications.smtp.host": smtp_server.host,
        "notifications.smtp.port": smtp_server.port,
        "notifications.webhook.secret": SECRET,
        "notifications.webhook.allowed_url_prefixes": ["http://127.0.0.1:"],
        "notifications.slack.allowed_url_prefixes": ["http://127.0.0.1:"],
        "notifications.webhook.allowed_networks": ["127.0.0.1/32"],
        "notifications.slack.allowed_networks": ["127.0.0.1/32"],
        "notifications.rabbitmq.url": RABBITMQ_URL if rabbit else "",
        "notifications.rabbitmq.queue": rabbit.name if rabbit else "unused",
    }
    cfg = submit_config(config, clusters=clusters, **notifications)
    # the configuration once restlater's slurmrestd is back
    cfg_up = submit_config(
        config, clusters={**clusters, "restlater": {"submit": rest_submit}}, **notifications
    )
    accounts = {"testcluster": "alice", "viarest": "alice", "viassh": "alice", "restlater": "alice"}
    add_user(db, ALICE, accounts)
    add_user(db, BOB, {"testcluster": "bob"})
    _, client = make_client(cfg)
    alice, bob = token_headers(db, ALICE), token_headers(db, BOB)
    # the first scrape is a backfill (no events): the jobs below are all new after it
    assert scrape_cluster(cfg, db, "testcluster").ok

    def submit(cluster: str, sub: str, **fields: Any) -> dict[str, Any]:
        body = {"cluster": cluster, "cwd": str(workdir / sub), "uuid": uuid.uuid4().hex, **fields}
        r = client.post("/api/v1/submissions", json=body, headers=alice)
        assert r.status_code == 201, r.json
        assert r.json["state"] == "SUBMITTED" and r.json["job_id"], r.json
        return r.json

    methods = ["email", "webhook", "slack"] + (["rabbitmq"] if rabbit else [])
    jobs = {
        # the slow one first, so it runs while the others queue behind it
        "timeout": submit("testcluster", "local", cmd="sleep 300", slurm={"time": "1"}),
        "ok": submit(
            "testcluster",
            "local",
            cmd=["bash", "-c", 'printf "<%s>\\n" "$@"', "argv0"],
            params=[EVIL, "$HOME", "a b"],
            slurm={"job_name": "cw-live-ok"},
            notification={
                "methods": methods,
                "params": {
                    "webhook": {"url": http_receiver.url + "/hook"},
                    "slack": {"webhook_url": http_receiver.url + "/slack"},
                },
            },
        ),
        "fail": submit("testcluster", "local", cmd=["bash", "-c", "exit 3"]),
        "cancel": submit("testcluster", "local", cmd="sleep 300"),
        "rest": submit("viarest", "rest", cmd="echo rest-ok", slurm={"output": "rest-%j.out"}),
        "ssh": submit("viassh", "ssh", cmd="echo ssh-ok"),
        # each backend's job prints its environment (an allowed directive on the way)
        "env-local": submit(
            "testcluster",
            "local",
            script="#!/bin/bash\n#SBATCH --job-name=cw-env\nenv\n",
            slurm=ASKED,
        ),
        "env-rest": submit(
            "viarest", "rest", cmd="env", slurm={"output": "rest-env-%j.out", **ASKED}
        ),
        "env-ssh": submit("viassh", "ssh", cmd="env", slurm=ASKED),
    }
    # a directive outside the allow-list is refused before it reaches Slurm
    r = client.post(
        "/api/v1/submissions",
        json={"cluster": "testcluster", "script": "#!/bin/bash\n#SBATCH --nice=-10000\ntrue\n"},
        headers=alice,
    )
    assert r.status_code == 400 and "--nice" in r.json["error"]["message"], r.json
    uuids = {name: job["uuid"] for name, job in jobs.items()}
    # an unreachable cluster: accepted PENDING (202), sent by retry_pending once it is back
    r = client.post(
        "/api/v1/submissions",
        json={"cluster": "restlater", "cmd": "echo later-ok", "cwd": str(workdir / "rest")},
        headers=alice,
    )
    assert r.status_code == 202 and r.json["state"] == "PENDING", r.json
    uuids["later"] = r.json["uuid"]
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert service.retry_pending(db, cfg, now=later) == 0  # still down
    # due again after retry_every_s (60 s by default)
    assert service.retry_pending(db, cfg_up, now=later + timedelta(minutes=2)) == 1
    assert db.submissions.find_one({"uuid": uuids["later"]})["state"] == "SUBMITTED"

    # refused: bob may neither cancel alice's job nor submit where he has no account
    assert (
        client.post(f"/api/v1/submissions/{uuids['cancel']}/cancel", headers=bob).status_code == 404
    )
    r = client.post("/api/v1/submissions", json={"cluster": "viarest", "cmd": "true"}, headers=bob)
    assert r.status_code == 403

    r = client.post(f"/api/v1/submissions/{uuids['cancel']}/cancel", headers=alice)
    assert r.status_code == 200 and r.json["state"] in ("CANCELLING", "CANCELLED"), r.json

    # follow them all together, until every one is final
    states: dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(states) < len(uuids):
        for name, sub_uuid in uuids.items():
            if name in states:
                continue
            if name == "later":  # followed through the configuration where it is reachable
                doc = db.submissions.find_one({"uuid": sub_uuid}, {"_id": 0})
                doc = service.sync_submission(db, cfg_up, doc)
            else:
                doc = client.get(f"/api/v1/submissions/{sub_uuid}", headers=alice).json
            if doc["state"] in FINAL_STATES:
                states[name] = doc["state"]
        if time.monotonic() > deadline:
            pytest.fail(f"not final after {DEADLINE_S:g}s: {sorted(set(uuids) - set(states))}")
        time.sleep(1.0)
    assert states == {
        "timeout": "TIMEOUT",
        "ok": "COMPLETED",
        "fail": "FAILED",
        "cancel": "CANCELLED",
        "rest": "COMPLETED",
        "ssh": "COMPLETED",
        "env-local": "COMPLETED",
        "env-rest": "COMPLETED",
        "env-ssh": "COMPLETED",
        "later": "COMPLETED",
    }

    def stdout(name: str) -> str:
        r = client.get(f"/api/v1/submissions/{uuids[name]}/files/stdout", headers=alice)
        assert r.status_code == 200, r.data
        return r.data.decode()

    # the parameter reached the job as ONE literal argument
    assert stdout("ok") == f"<{EVIL}>\n<$HOME>\n<a b>\n"
    assert stdout("rest") == "rest-ok\n"
    assert stdout("ssh") == "ssh-ok\n"  # over SFTP, as alice
    listed = client.get(f"/api/v1/submissions/{uuids['ssh']}/files", headers=alice).json["files"]
    assert [f["kind"] for f in listed] == ["stdout"]
    r = client.get(
        f"/api/v1/submissions/{uuids['ok']}/files{workdir}/local/../../../../etc/passwd",
        headers=alice,
    )
    assert r.status_code in (403, 404) and b"root:" not in r.data
    submitted = db.audit_log.count_documents(
        {"action": "submission.submit", "result": "submitted", "user_email": ALICE}
    )
    assert submitted == 10  # nine at once, one on retry

    # no job of any backend sees a variable of the web process
    for name in ("env-local", "env-rest", "env-ssh"):
        lines = stdout(name).splitlines()
        job_env = dict(line.split("=", 1) for line in lines if "=" in line)
        assert job_env.get("CW_ASKED") == "yes", (name, job_env)
        assert not set(SERVER_SECRETS) & set(job_env), name
        shared = {k for k, v in os.environ.items() if job_env.get(k) == v} - GENERIC_VARIABLES
        assert not shared, (name, shared)

    # notifications: the scraper sees the ended jobs, the notifier delivers
    ok_job = jobs["ok"]["job_id"]

    def delivered() -> bool:
        scrape_cluster(cfg, db, "testcluster")
        run_once(db, cfg)
        return db.deliveries.count_documents({"job_id": ok_job, "status": "sent"}) == len(methods)

    wait_for(delivered, timeout=60, interval=1.0)
    mail = smtp_server.wait_for_messages(1)
    assert len(mail) == 1 and f"job {ok_job} (cw-live-ok)" in mail[0]["Subject"]
    assert mail[0]["To"] == ALICE
    hooks = http_receiver.received("/hook")
    assert len(hooks) == 1 and verify(hooks[0].body, SECRET, hooks[0].headers[SIGNATURE_HEADER])
    assert hooks[0].json()["new_state"] == "COMPLETED"
    assert len(http_receiver.received("/slack")) == 1
    if rabbit:
        try:
            messages = rabbit.get_all(timeout=2)
            assert len(messages) == 1 and json.loads(messages[0][1])["job_id"] == ok_job
        finally:
            import contextlib

            import pika

            with contextlib.closing(pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))) as c:
                c.channel().queue_delete(queue=rabbit.name)
