"""The notifier against real receivers: SMTP process, HTTP receiver, RabbitMQ.

The last test kills a notifier process (SIGKILL) in the middle of a delivery,
restarts it, and checks that every notification arrived exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo.database import Database

from clockwork_core.config import Config, load_config
from clockwork_web.notify.channels import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from clockwork_web.notify.notifier import Notifier, run_once
from test_common.receivers import (  # noqa: F401  (fixtures)
    HttpReceiver,
    RabbitQueue,
    SmtpServer,
    http_receiver,
    rabbitmq_queue,
    smtp_server,
    wait_for,
)

SECRET = "webhook-secret-for-tests"
ALICE = "alice@example.org"


def notify_config(
    config: Config, smtp: SmtpServer | None, http: HttpReceiver | None, **extra: Any
) -> Config:
    """The test's config plus notification settings pointing at the receivers."""
    overrides: dict[str, Any] = {
        "database.uri": config.database.uri,
        "database.name": config.database.name,
        "clusters": {"testcluster": {}},
        "notifications.webhook.secret": SECRET,
        "notifications.webhook.allowed_url_prefixes": ["http://127.0.0.1:"],
        "notifications.slack.allowed_url_prefixes": ["http://127.0.0.1:"],
        # the receivers run on loopback, which user URLs may not reach by default
        "notifications.webhook.allowed_networks": ["127.0.0.1/32"],
        "notifications.slack.allowed_networks": ["127.0.0.1/32"],
        "notifications.backoff_base_s": 30.0,
        "notifications.max_attempts": 3,
    }
    if smtp:
        overrides["notifications.smtp.host"] = smtp.host
        overrides["notifications.smtp.port"] = smtp.port
        overrides["notifications.smtp.timeout_s"] = 5.0
    for key, value in extra.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                overrides[f"notifications.{key}.{sub}"] = v
        else:
            overrides[f"notifications.{key}"] = value
    return load_config(env={}, overrides=overrides)


def add_event(db: Database[Any], job_id: int, state: str = "COMPLETED", user: str = ALICE) -> str:
    event_id = f"testcluster:{job_id}:{state}:{uuid.uuid4().hex[:6]}"
    db.job_events.insert_one(
        {
            "_id": event_id,
            "cluster_name": "testcluster",
            "job_id": job_id,
            "user": user,
            "old_state": "RUNNING",
            "new_state": state,
            "time": datetime.now(UTC),
            "delivered": False,
        }
    )
    return event_id


def add_submission(db: Database[Any], job_id: int, notification: dict[str, Any]) -> str:
    sub_uuid = f"sub-{job_id}-{uuid.uuid4().hex[:6]}"
    db.submissions.insert_one(
        {
            "uuid": sub_uuid,
            "user_email": ALICE,
            "cluster_name": "testcluster",
            "username": "alice",
            "job_id": job_id,
            "state": "RUNNING",
            "notification": notification,
            "created_at": datetime.now(UTC),
        }
    )
    return sub_uuid


def test_every_channel_delivers_once(
    config: Config,
    db: Database[Any],
    smtp_server: SmtpServer,  # noqa: F811 (fixture)
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
    rabbitmq_queue: RabbitQueue,  # noqa: F811 (fixture)
) -> None:
    cfg = notify_config(
        config,
        smtp_server,
        http_receiver,
        rabbitmq={"url": rabbitmq_queue.url, "queue": rabbitmq_queue.name, "timeout_s": 5},
    )
    db.jobs.insert_one({"slurm": {"cluster_name": "testcluster", "job_id": 11, "name": "train"}})
    sub = add_submission(
        db,
        11,
        {
            "methods": ["email", "slack", "rabbitmq", "webhook"],
            "params": {
                "slack": {"webhook_url": http_receiver.url + "/slack"},
                "webhook": {"url": http_receiver.url + "/hook"},
            },
        },
    )
    event_id = add_event(db, 11)
    counts = run_once(db, cfg)
    assert (counts.sent, counts.failed, counts.delivered_events) == (4, 0, 1)

    mail = smtp_server.wait_for_messages(1)
    assert len(mail) == 1
    assert mail[0]["To"] == ALICE
    assert "job 11 (train) on testcluster: COMPLETED" in mail[0]["Subject"]

    hook = http_receiver.received("/hook")
    assert len(hook) == 1
    assert verify(hook[0].body, SECRET, hook[0].headers[SIGNATURE_HEADER])
    assert hook[0].headers[DELIVERY_HEADER] == f"{event_id}:webhook"
    payload = hook[0].json()
    assert (payload["job_id"], payload["new_state"], payload["submission_uuid"]) == (
        11,
        "COMPLETED",
        sub,
    )
    slack = http_receiver.received("/slack")
    assert len(slack) == 1 and "COMPLETED" in slack[0].json()["text"]

    messages = rabbitmq_queue.get_all(timeout=2)
    assert len(messages) == 1
    properties, body = messages[0]
    assert properties.delivery_mode == 2
    assert properties.message_id == f"{event_id}:rabbitmq"
    assert json.loads(body)["new_state"] == "COMPLETED"

    assert db.job_events.find_one({"_id": event_id})["delivered"] is True
    # a second pass sends nothing
    assert run_once(db, cfg).sent == 0
    assert len(http_receiver.received()) == 2
    assert len(smtp_server.messages()) == 1


def test_a_failing_channel_is_retried_with_backoff_and_holds_back_no_other(
    config: Config,
    db: Database[Any],
    smtp_server: SmtpServer,  # noqa: F811 (fixture)
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
) -> None:
    cfg = notify_config(config, smtp_server, http_receiver)
    add_submission(
        db,
        12,
        {"methods": ["webhook", "email"], "params": {"webhook": {"url": http_receiver.url + "/h"}}},
    )
    event_id = add_event(db, 12, "FAILED")
    http_receiver.statuses[:] = [500, 503]
    t0 = datetime.now(UTC).replace(microsecond=0)  # the database keeps milliseconds
    clock = {"now": t0}
    notifier = Notifier(db, cfg, clock=lambda: clock["now"])

    counts = notifier.run_once()
    assert (counts.sent, counts.retry) == (1, 1)  # the email went, the webhook waits
    assert len(smtp_server.wait_for_messages(1)) == 1
    hook = db.deliveries.find_one({"event_id": event_id, "channel": "webhook"})
    assert hook["status"] == "pending" and hook["attempts"] == 1
    assert hook["next_attempt"] == t0 + timedelta(seconds=30)
    assert db.job_events.find_one({"_id": event_id})["delivered"] is False

    assert notifier.run_once().sent == 0  # not due yet: nothing sent
    clock["now"] = t0 + timedelta(seconds=31)
    assert notifier.run_once().retry == 1  # 503: second failure, backoff doubles
    hook = db.deliveries.find_one({"event_id": event_id, "channel": "webhook"})
    assert hook["next_attempt"] == clock["now"] + timedelta(seconds=60)
    clock["now"] += timedelta(seconds=61)
    assert notifier.run_once().sent == 1
    assert db.deliveries.find_one({"event_id": event_id, "channel": "webhook"})["status"] == "sent"
    assert db.job_events.find_one({"_id": event_id})["delivered"] is True
    assert len(smtp_server.messages()) == 1  # the email was never sent again
    assert len(http_receiver.received("/h")) == 3


def test_gives_up_after_max_attempts_and_on_permanent_errors(
    config: Config, db: Database[Any], http_receiver: HttpReceiver  # noqa: F811 (fixture)
) -> None:
    cfg = notify_config(config, None, http_receiver, max_attempts=2, backoff_base_s=0.001)
    add_submission(
        db,
        13,
        {
            "methods": ["webhook", "slack"],
            "params": {
                "webhook": {"url": http_receiver.url + "/down"},
                "slack": {"webhook_url": "https://evil.example/"},  # not an allowed prefix
            },
        },
    )
    event_id = add_event(db, 13)
    http_receiver.statuses[:] = [500, 500, 500]
    notifier = Notifier(db, cfg)
    notifier.run_once()
    wait_for(lambda: notifier.run_once().delivered_events == 1, timeout=5)
    deliveries = {d["channel"]: d for d in db.deliveries.find({"event_id": event_id})}
    assert deliveries["webhook"]["status"] == "failed" and deliveries["webhook"]["attempts"] == 2
    assert deliveries["slack"]["status"] == "failed"
    assert "not allowed" in deliveries["slack"]["last_error"]


def test_user_default_and_events_nobody_asked_about(
    config: Config, db: Database[Any], http_receiver: HttpReceiver  # noqa: F811 (fixture)
) -> None:
    cfg = notify_config(config, None, http_receiver)
    db.users.insert_one(
        {
            "email": ALICE,
            "settings": {
                "notifications": {
                    "methods": ["webhook"],
                    "params": {"webhook": {"url": http_receiver.url + "/default"}},
                    "on": ["final"],
                }
            },
        }
    )
    running = add_event(db, 14, "RUNNING")  # not final: nobody asked
    done = add_event(db, 14, "TIMEOUT")
    stranger = add_event(db, 15, "COMPLETED", user="nobody@example.org")
    counts = run_once(db, cfg)
    assert (counts.sent, counts.delivered_events) == (1, 3)
    assert [r.json()["new_state"] for r in http_receiver.received("/default")] == ["TIMEOUT"]
    assert db.deliveries.count_documents({"event_id": {"$in": [running, stranger]}}) == 0
    assert db.deliveries.find_one({"event_id": done})["status"] == "sent"


def test_stale_sending_resends_idempotent_channels_only(
    config: Config,
    db: Database[Any],
    smtp_server: SmtpServer,  # noqa: F811 (fixture)
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
) -> None:
    cfg = notify_config(config, smtp_server, http_receiver, lease_s=5)
    add_submission(
        db,
        16,
        {"methods": ["email", "webhook"], "params": {"webhook": {"url": http_receiver.url + "/s"}}},
    )
    event_id = add_event(db, 16)
    past = datetime.now(UTC) - timedelta(minutes=5)
    for channel in ("email", "webhook"):  # as a notifier that died mid-call leaves them
        db.deliveries.insert_one(
            {
                "event_id": event_id,
                "channel": channel,
                "status": "sending",
                "attempts": 1,
                "lease_until": past,
                "next_attempt": past,
            }
        )
    counts = run_once(db, cfg)
    assert (counts.sent, counts.unknown, counts.delivered_events) == (1, 1, 1)
    deliveries = {d["channel"]: d for d in db.deliveries.find({"event_id": event_id})}
    assert deliveries["email"]["status"] == "unknown"
    assert deliveries["webhook"]["status"] == "sent" and deliveries["webhook"]["attempts"] == 2
    assert smtp_server.messages() == []
    assert len(http_receiver.received("/s")) == 1


# --------------------------------------------------------------------------- kill -9


def _write_config(path: Path, cfg: Config) -> None:
    n = cfg.notifications
    path.write_text(f"""
[database]
uri = "{cfg.database.uri}"
name = "{cfg.database.name}"

[notifications]
lease_s = 1.0
max_attempts = 5
backoff_base_s = 0.5

[notifications.smtp]
host = "{n.smtp.host}"
port = {n.smtp.port}
timeout_s = 5.0

[notifications.webhook]
secret = "{SECRET}"
timeout_s = 30.0
allowed_url_prefixes = ["http://127.0.0.1:"]
allowed_networks = ["127.0.0.1/32"]
""")


def _notifier(config_file: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLOCKWORK_CONFIG": str(config_file)}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.Popen(
        [sys.executable, "-m", "clockwork_web.notify", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_killed_mid_delivery_and_restarted_sends_each_notification_once(
    config: Config,
    db: Database[Any],
    smtp_server: SmtpServer,  # noqa: F811 (fixture)
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    cfg = notify_config(config, smtp_server, http_receiver)
    config_file = tmp_path / "clockwork.toml"
    _write_config(config_file, cfg)
    events = []
    for job_id in (21, 22, 23):
        add_submission(
            db,
            job_id,
            {
                "methods": ["email", "webhook"],
                "params": {"webhook": {"url": f"{http_receiver.url}/job{job_id}"}},
            },
        )
        events.append(add_event(db, job_id))
    # the receiver holds job 22's webhook: the notifier is caught mid-delivery
    http_receiver.hold_paths.add("/job22")
    proc = _notifier(config_file, "--loop", "--every", "0.2")
    try:
        http_receiver.wait_for(1, "/job22", timeout=30)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    http_receiver.hold_paths.clear()
    http_receiver.release.set()
    # what the killed notifier left: event 21 done; 22's email sent, its webhook in flight
    statuses = {(d["job_id"], d["channel"]): d["status"] for d in db.deliveries.find({})}
    assert statuses[(21, "email")] == statuses[(21, "webhook")] == "sent"
    assert statuses[(22, "email")] == "sent"
    assert statuses[(22, "webhook")] == "sending"
    assert (23, "email") not in statuses

    # restart (as often as needed: the dead one's lease must expire first)
    def all_delivered() -> bool:
        run = _notifier(config_file, "--once")
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 0, out.decode()
        return db.job_events.count_documents({"delivered": False}) == 0

    wait_for(all_delivered, timeout=60, interval=0.2)

    mails = smtp_server.wait_for_messages(3)
    assert sorted(m["Subject"].split(" on ")[0] for m in mails) == [
        "[Clockwork] job 21",
        "[Clockwork] job 22",
        "[Clockwork] job 23",
    ]
    assert len(http_receiver.received("/job21")) == 1
    assert len(http_receiver.received("/job23")) == 1
    # job 22's webhook went out twice (unknown outcome, then resent) with ONE delivery id
    repeats = http_receiver.received("/job22")
    assert len(repeats) == 2
    assert {r.headers[DELIVERY_HEADER] for r in repeats} == {f"{events[1]}:webhook"}
    assert {d["status"] for d in db.deliveries.find({})} == {"sent"}
