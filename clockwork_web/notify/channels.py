"""The notification channels: email (SMTP), Slack incoming webhook, RabbitMQ, signed webhook.

Each ``send_*`` function delivers one :class:`Message` or raises
:class:`ChannelError` (``permanent=True`` when retrying cannot help, e.g. a
channel that is not configured). Every network call has a timeout.

Idempotency: the webhook and RabbitMQ carry the delivery id
``<event_id>:<channel>`` (header ``X-Clockwork-Delivery``, AMQP ``message_id``)
so receivers can drop a repeat; the email carries it in its ``Message-ID``.
The webhook body is signed: ``X-Clockwork-Signature: sha256=<hex HMAC-SHA256
of the raw body with notifications.webhook.secret>``.

User-supplied URLs (every webhook, a user's own Slack URL) are checked and
connected to as ``urls`` describes (no internal address, no DNS rebinding, no
redirect); only the operator's ``notifications.slack.webhook_url`` is trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import requests
import urllib3

from clockwork_core.config import NotificationsConfig, SlackConfig, WebhookConfig
from clockwork_web.notify.urls import UnsafeURLError, check_url, post_checked

SIGNATURE_HEADER = "X-Clockwork-Signature"
DELIVERY_HEADER = "X-Clockwork-Delivery"


class ChannelError(Exception):
    """A delivery failed; ``permanent`` means do not retry."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """One job event, as every channel renders it."""

    event_id: str
    cluster_name: str
    job_id: int
    new_state: str
    old_state: str | None = None
    time: datetime | None = None
    user: str | None = None
    job_name: str | None = None
    submission_uuid: str | None = None
    link: str | None = None

    def subject(self) -> str:
        name = f" ({self.job_name})" if self.job_name else ""
        return f"[Clockwork] job {self.job_id}{name} on {self.cluster_name}: {self.new_state}"

    def text(self) -> str:
        lines = [
            f"Job {self.job_id} on cluster {self.cluster_name} is now {self.new_state}"
            + (f" (was {self.old_state})." if self.old_state else "."),
        ]
        if self.job_name:
            lines.append(f"Job name: {self.job_name}")
        if self.submission_uuid:
            lines.append(f"Submission: {self.submission_uuid}")
        if self.time:
            lines.append(f"Time: {self.time.isoformat()}")
        if self.link:
            lines.append(self.link)
        return "\n".join(lines) + "\n"

    def payload(self, delivery_id: str) -> dict[str, Any]:
        return {
            "delivery_id": delivery_id,
            "event_id": self.event_id,
            "cluster_name": self.cluster_name,
            "job_id": self.job_id,
            "job_name": self.job_name,
            "old_state": self.old_state,
            "new_state": self.new_state,
            "time": self.time.isoformat() if self.time else None,
            "user": self.user,
            "submission_uuid": self.submission_uuid,
            "link": self.link,
        }


def sign(body: bytes, secret: str) -> str:
    """The ``X-Clockwork-Signature`` value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """What a receiver does: compare the signature in constant time."""
    return bool(header) and hmac.compare_digest(sign(body, secret), header or "")


def _json_body(message: Message, delivery_id: str) -> bytes:
    return json.dumps(message.payload(delivery_id), sort_keys=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- email


def send_email(config: NotificationsConfig, message: Message, to: str, delivery_id: str) -> None:
    """Send a plain-text email over SMTP (SSL or STARTTLS as configured)."""
    smtp = config.smtp
    if not to or "@" not in to:
        raise ChannelError(f"no valid recipient address ({to!r})", permanent=True)
    email = EmailMessage()
    email["From"] = smtp.sender
    email["To"] = to
    email["Subject"] = message.subject()
    domain = smtp.sender.rpartition("@")[2] or "localhost"
    email["Message-ID"] = make_msgid(idstring=delivery_id.replace(":", "."), domain=domain)
    email["X-Clockwork-Delivery"] = delivery_id
    email.set_content(message.text())
    context = ssl.create_default_context()
    try:
        if smtp.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=context)
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            client.send_message(email)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError(f"SMTP refused the recipient {to}", permanent=True) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError("SMTP authentication failed", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"SMTP {smtp.host}:{smtp.port}: {exc}") from exc


# --------------------------------------------------------------------------- http


def _answer(status: int, what: str) -> None:
    """Map an HTTP status to success or a :class:`ChannelError`."""
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise ChannelError(f"{what}: HTTP {status} (redirects are not followed)", permanent=True)
    retryable = status in (408, 425, 429) or status >= 500
    raise ChannelError(f"{what}: HTTP {status}", permanent=not retryable)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float, what: str) -> None:
    """POST to an operator-configured (trusted) URL."""
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise ChannelError(f"{what}: {type(exc).__name__}") from exc
    _answer(response.status_code, what)


def _post_user(
    url: str,
    policy: SlackConfig | WebhookConfig,
    body: bytes,
    headers: dict[str, str],
    what: str,
) -> None:
    """POST to a user-supplied URL: checked, resolved once, connected to that address."""
    try:
        checked = check_url(url, policy, what)
    except UnsafeURLError as exc:
        raise ChannelError(str(exc), permanent=exc.permanent) from exc
    try:
        status = post_checked(checked, body, headers, policy.timeout_s)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ChannelError(f"{what}: {type(exc).__name__}") from exc
    _answer(status, what)


def send_slack(
    config: NotificationsConfig,
    message: Message,
    url: str,
    delivery_id: str,
    *,
    user_supplied: bool = True,
) -> None:
    """Post to a Slack incoming webhook (``{"text": ...}``).

    Only the operator's own ``notifications.slack.webhook_url`` may pass
    ``user_supplied=False``; any other URL goes through the SSRF checks.
    """
    body = json.dumps({"text": f"*{message.subject()}*\n{message.text()}"}).encode()
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id}
    if user_supplied:
        _post_user(url, config.slack, body, headers, "Slack")
    else:
        _post(url, body, headers, config.slack.timeout_s, "Slack")


def send_webhook(config: NotificationsConfig, message: Message, url: str, delivery_id: str) -> None:
    """POST the event as JSON, signed with HMAC-SHA256 (see the module docstring).

    Webhook URLs always come from users: they go through the SSRF checks.
    """
    secret = config.webhook.secret.get_secret_value() if config.webhook.secret else ""
    if not secret:
        raise ChannelError("webhook: notifications.webhook.secret is not set", permanent=True)
    body = _json_body(message, delivery_id)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret),
        DELIVERY_HEADER: delivery_id,
        "X-Clockwork-Event": message.event_id,
    }
    _post_user(url, config.webhook, body, headers, "webhook")


# --------------------------------------------------------------------------- rabbitmq


def send_rabbitmq(config: NotificationsConfig, message: Message, delivery_id: str) -> None:
    """Publish to a durable queue, persistent message, with publisher confirms."""
    import pika
    from pika import exceptions as pika_errors

    conf = config.rabbitmq
    if not conf.url:
        raise ChannelError("RabbitMQ: notifications.rabbitmq.url is not set", permanent=True)
    try:
        params = pika.URLParameters(conf.url)
        params.socket_timeout = conf.timeout_s
        params.blocked_connection_timeout = conf.timeout_s
        params.stack_timeout = conf.timeout_s
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
    except (pika_errors.AMQPError, OSError, ValueError) as exc:
        raise ChannelError(f"RabbitMQ: cannot connect: {type(exc).__name__}") from exc
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue=conf.queue, durable=True)
        channel.basic_publish(
            exchange="",
            routing_key=conf.queue,
            body=_json_body(message, delivery_id),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=delivery_id,
                headers={"event_id": message.event_id},
            ),
            mandatory=True,
        )
    except (pika_errors.UnroutableError, pika_errors.NackError) as exc:
        raise ChannelError(f"RabbitMQ did not confirm the message: {type(exc).__name__}") from exc
    except (pika_errors.AMQPError, OSError) as exc:
        raise ChannelError(f"RabbitMQ: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(pika_errors.AMQPError, OSError):
            connection.close()
