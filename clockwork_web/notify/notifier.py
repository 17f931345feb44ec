"""The notifier: read ``job_events`` (the scraper's outbox), deliver, mark delivered.

Who is notified: for an event of job (cluster, job_id), the submission that
follows that job and asked for a ``notification``, else the job's user's
default (``users.settings.notifications = {methods, params, on}``). ``on``
lists the Slurm states that notify (``final`` = any final state, the default).

Deliveries. Each (event, channel) has ONE ``deliveries`` document (unique
index ``delivery_key``), created ``pending`` by an upsert, then moved by atomic
``find_one_and_update`` claims::

    pending --claim--> sending (lease_until = now + lease_s)
    sending --channel call returned--> sent
    sending --ChannelError--> pending (next_attempt = now + backoff_base_s * 2**(attempts-1))
                            or failed (permanent, or max_attempts reached)
    sending, lease expired (the notifier died mid-call) --> see below

So two notifiers never send the same delivery, one channel's failure never
holds back the others (each has its own document), and a notifier killed
between two deliveries resumes exactly where it stopped: what was ``sent`` is
never sent again.

The one ambiguous case is a notifier that died DURING a channel call, after
the claim and before recording the outcome: the message may or may not have
gone out. We resolve it per channel:

- ``webhook`` and ``rabbitmq`` are retried: each message carries the delivery
  id ``<event_id>:<channel>`` (``X-Clockwork-Delivery`` header, AMQP
  ``message_id``), so a receiver that keys on it processes it exactly once;
- ``email`` and ``slack`` have no such key on the receiving side, and a
  duplicate email/chat message is what the issue forbids, so the delivery is
  marked ``unknown`` (final, logged) and NOT resent: at most once.

The window is small (one database write after the call returns); the outcome
is recorded immediately after the call, before anything else is done.

An event is marked ``delivered`` when all its deliveries are final (sent,
failed, unknown), or at once when nobody asked about it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from clockwork_core.config import Config
from clockwork_core.schema import FINAL_STATES
from clockwork_web.notify.channels import (
    ChannelError,
    Message,
    send_email,
    send_rabbitmq,
    send_slack,
    send_webhook,
)
from clockwork_web.notify.urls import UnsafeURLError, check_prefix

log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = ("email", "slack", "rabbitmq", "webhook")
#: Channels whose receivers can drop a repeat (they get the delivery id).
IDEMPOTENT_CHANNELS: frozenset[str] = frozenset({"webhook", "rabbitmq"})
FINAL_DELIVERY: frozenset[str] = frozenset({"sent", "failed", "unknown"})
#: Slurm states that end a job.
FINAL_JOB_STATES: frozenset[str] = FINAL_STATES

Sender = Callable[[str, Message, str, str], None]


@dataclass
class Counts:
    """What one pass did."""

    events: int = 0
    delivered_events: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """Who gets an event, and where: channel -> target (address, URL or queue)."""

    user_email: str | None
    targets: dict[str, str]
    submission_uuid: str | None = None
    problems: dict[str, str] = field(default_factory=dict)


def wants(on: list[str] | tuple[str, ...], state: str) -> bool:
    """Does a subscription with ``on`` ask about a job now in ``state``?"""
    base = (state or "").split(" ", 1)[0].upper()
    for item in on or ("final",):
        item = str(item)
        if item.lower() in ("all", "any"):
            return True
        if item.lower() == "final" and base in FINAL_JOB_STATES:
            return True
        if item.upper() == base:
            return True
    return False


def plan_for(db: Database[Any], config: Config, event: dict[str, Any]) -> Plan | None:
    """The deliveries an event needs, or None when nobody asked about it."""
    notification = None
    user_email = event.get("user")
    submission_uuid = None
    for sub in db.submissions.find(
        {"cluster_name": event["cluster_name"], "job_id": event["job_id"]},
        {"_id": 0, "uuid": 1, "user_email": 1, "notification": 1},
    ).limit(10):
        if sub.get("notification"):
            notification = sub["notification"]
            user_email = sub["user_email"]
            submission_uuid = sub["uuid"]
            break
    if notification is None and user_email:
        user = db.users.find_one({"email": user_email}, {"_id": 0, "settings": 1})
        notification = ((user or {}).get("settings") or {}).get("notifications")
    if not notification or not notification.get("methods"):
        return None
    if not wants(notification.get("on") or ["final"], event.get("new_state") or ""):
        return None
    params = notification.get("params") or {}
    conf = config.notifications
    targets: dict[str, str] = {}
    problems: dict[str, str] = {}
    for method in notification["methods"]:
        if method not in CHANNELS:
            continue
        # user URLs: the cheap checks here; the address checks at each send (urls.py)
        try:
            if method == "email":
                targets[method] = user_email or ""
            elif method == "slack":
                url = (params.get("slack") or {}).get("webhook_url")
                if url:
                    targets[method] = check_prefix(url, conf.slack.allowed_url_prefixes, "Slack")
                else:
                    targets[method] = conf.slack.webhook_url
            elif method == "webhook":
                url = (params.get("webhook") or {}).get("url")
                targets[method] = check_prefix(url, conf.webhook.allowed_url_prefixes, "webhook")
            elif method == "rabbitmq":
                targets[method] = conf.rabbitmq.queue
        except UnsafeURLError as exc:
            targets[method] = ""
            problems[method] = str(exc)
    return Plan(user_email, targets, submission_uuid, problems)


def default_sender(config: Config) -> Sender:
    """Dispatch to the real channels."""

    def send(channel: str, message: Message, target: str, delivery_id: str) -> None:
        conf = config.notifications
        if channel == "email":
            send_email(conf, message, target, delivery_id)
        elif channel == "slack":
            if not target:
                raise ChannelError("Slack: no webhook URL configured", permanent=True)
            # only the operator's own URL is trusted; a user's goes through urls.py
            trusted = bool(conf.slack.webhook_url) and target == conf.slack.webhook_url
            send_slack(conf, message, target, delivery_id, user_supplied=not trusted)
        elif channel == "webhook":
            send_webhook(conf, message, target, delivery_id)
        elif channel == "rabbitmq":
            send_rabbitmq(conf, message, delivery_id)
        else:
            raise ChannelError(f"unknown channel {channel!r}", permanent=True)

    return send


def build_message(db: Database[Any], config: Config, event: dict[str, Any], plan: Plan) -> Message:
    job = db.jobs.find_one(
        {"slurm.cluster_name": event["cluster_name"], "slurm.job_id": event["job_id"]},
        {"_id": 0, "slurm.name": 1},
    )
    base = config.web.base_url.rstrip("/")
    link = f"{base}/submissions/{plan.submission_uuid}" if plan.submission_uuid else None
    return Message(
        event_id=str(event["_id"]),
        cluster_name=event["cluster_name"],
        job_id=int(event["job_id"]),
        new_state=str(event.get("new_state")),
        old_state=event.get("old_state"),
        time=event.get("time"),
        user=plan.user_email,
        job_name=((job or {}).get("slurm") or {}).get("name"),
        submission_uuid=plan.submission_uuid,
        link=link,
    )


class Notifier:
    """One notifier process: ``run_once`` is one pass over the undelivered events."""

    def __init__(
        self,
        db: Database[Any],
        config: Config,
        *,
        sender: Sender | None = None,
        clock: Callable[[], datetime] | None = None,
        worker: str | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.send = sender or default_sender(config)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    # ----------------------------------------------------------------- one pass

    def run_once(self) -> Counts:
        counts = Counts()
        conf = self.config.notifications
        events = list(
            self.db.job_events.find({"delivered": False}).sort("time", 1).limit(conf.batch_size)
        )
        for event in events:
            counts.events += 1
            try:
                if self.process_event(event, counts):
                    counts.delivered_events += 1
            except Exception as exc:  # one bad event must not stop the others
                log.exception("event %s: cannot process", event.get("_id"))
                counts.errors.append(f"{event.get('_id')}: {type(exc).__name__}")
        return counts

    def process_event(self, event: dict[str, Any], counts: Counts) -> bool:
        """Deliver what is due for one event; True when it is now fully delivered."""
        plan = plan_for(self.db, self.config, event)
        if plan is None:
            self._mark_delivered(event, "nobody asked")
            return True
        message = build_message(self.db, self.config, event, plan)
        for channel, target in plan.targets.items():
            self._ensure(event, channel, target)
            delivery = self._claim(event["_id"], channel, counts)
            if delivery is None:
                continue
            problem = plan.problems.get(channel)
            self._deliver(delivery, message, target, problem, counts)
        statuses = [
            d["status"]
            for d in self.db.deliveries.find({"event_id": event["_id"]}, {"_id": 0, "status": 1})
        ]
        if all(s in FINAL_DELIVERY for s in statuses):
            self._mark_delivered(event, f"{len(statuses)} deliveries")
            return True
        return False

    # ----------------------------------------------------------------- steps

    def _ensure(self, event: dict[str, Any], channel: str, target: str) -> None:
        now = self.clock()
        # DuplicateKeyError: another notifier created it a moment ago
        with contextlib.suppress(DuplicateKeyError):
            self.db.deliveries.update_one(
                {"event_id": event["_id"], "channel": channel},
                {
                    "$setOnInsert": {
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt": now,
                        "target": target,
                        "cluster_name": event["cluster_name"],
                        "job_id": event["job_id"],
                        "created_at": now,
                        "last_error": None,
                    }
                },
                upsert=True,
            )

    def _claim(self, event_id: Any, channel: str, counts: Counts) -> dict[str, Any] | None:
        """Take a due delivery (atomically), or settle one whose notifier died."""
        now = self.clock()
        lease = timedelta(seconds=self.config.notifications.lease_s)
        claim = {
            "$set": {
                "status": "sending",
                "lease_until": now + lease,
                "worker": self.worker,
                "claimed_at": now,
            },
            "$inc": {"attempts": 1},
        }
        doc = self.db.deliveries.find_one_and_update(
            {
                "event_id": event_id,
                "channel": channel,
                "status": "pending",
                "next_attempt": {"$lte": now},
            },
            claim,
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return doc
        stale = self.db.deliveries.find_one(
            {
                "event_id": event_id,
                "channel": channel,
                "status": "sending",
                "lease_until": {"$lt": now},
            }
        )
        if stale is None:
            return None
        # the same delivery, still held by the same (dead) claim: flat, on delivery_stale
        expected = {
            "event_id": event_id,
            "channel": channel,
            "status": "sending",
            "lease_until": stale["lease_until"],
        }
        if channel in IDEMPOTENT_CHANNELS:
            log.warning(
                "delivery %s/%s: its notifier died while sending; sending again "
                "(receivers dedupe on %s:%s)",
                event_id,
                channel,
                event_id,
                channel,
            )
            return self.db.deliveries.find_one_and_update(
                expected, claim, return_document=ReturnDocument.AFTER
            )
        log.warning(
            "delivery %s/%s: its notifier died while sending; it may have gone out, "
            "so it is not resent (status unknown)",
            event_id,
            channel,
        )
        result = self.db.deliveries.update_one(
            expected,
            {
                "$set": {
                    "status": "unknown",
                    "finished_at": now,
                    "last_error": "the notifier stopped during the delivery; not resent",
                }
            },
        )
        if result.modified_count:
            counts.unknown += 1
        return None

    def _deliver(
        self,
        delivery: dict[str, Any],
        message: Message,
        target: str,
        problem: str | None,
        counts: Counts,
    ) -> None:
        channel = delivery["channel"]
        delivery_id = f"{delivery['event_id']}:{channel}"
        conf = self.config.notifications
        try:
            if problem:
                raise ChannelError(problem, permanent=True)
            self.send(channel, message, target, delivery_id)
        except ChannelError as exc:
            now = self.clock()
            attempts = int(delivery.get("attempts") or 1)
            if exc.permanent or attempts >= conf.max_attempts:
                update = {"status": "failed", "finished_at": now, "last_error": str(exc)}
                counts.failed += 1
                log.warning("delivery %s failed for good: %s", delivery_id, exc)
            else:
                delay = conf.backoff_base_s * (2 ** (attempts - 1))
                update = {
                    "status": "pending",
                    "next_attempt": now + timedelta(seconds=delay),
                    "last_error": str(exc),
                }
                counts.retry += 1
                log.info("delivery %s failed (%s); retry in %.0f s", delivery_id, exc, delay)
            self.db.deliveries.update_one({"_id": delivery["_id"]}, {"$set": update})
            return
        # recorded first thing after the call returns (see the module docstring)
        self.db.deliveries.update_one(
            {"_id": delivery["_id"]},
            {"$set": {"status": "sent", "finished_at": self.clock(), "last_error": None}},
        )
        counts.sent += 1

    def _mark_delivered(self, event: dict[str, Any], why: str) -> None:
        self.db.job_events.update_one(
            {"_id": event["_id"]},
            {"$set": {"delivered": True, "delivered_at": self.clock(), "delivery_note": why}},
        )


def run_once(db: Database[Any], config: Config, **kwargs: Any) -> Counts:
    """One pass of a fresh :class:`Notifier`."""
    return Notifier(db, config, **kwargs).run_once()
