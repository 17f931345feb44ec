"""SSRF through user webhooks: what a user's URL may make the notifier connect to.

Against the real HTTP receiver on loopback (the very kind of address a user
must not reach unless the operator allows it) and a real TLS server; DNS
answers are played by a resolver function where a test needs a name.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from clockwork_core.config import Config, NotificationsConfig, load_config
from clockwork_web.notify.notifier import run_once
from clockwork_web.notify.urls import (
    UnsafeURLError,
    check_url,
    check_user_slack_url,
    check_user_webhook,
    post_checked,
)
from clockwork_web_test.test_notify_notifier import add_event, add_submission
from test_common.receivers import HttpReceiver, http_receiver  # noqa: F401  (fixture)

SECRET = "webhook-secret-for-tests"


def notifications(**overrides: Any) -> NotificationsConfig:
    """The notification settings with ``overrides`` (keys under ``notifications.``)."""
    dotted = {f"notifications.{key}": value for key, value in overrides.items()}
    return load_config(env={}, overrides=dotted).notifications


def with_db(config: Config, **overrides: Any) -> Config:
    """The test's config (its database) with notification settings."""
    dotted = {
        "database.uri": config.database.uri,
        "database.name": config.database.name,
        "clusters": {"testcluster": {}},
        "notifications.webhook.secret": SECRET,
    }
    dotted.update({f"notifications.{key}": value for key, value in overrides.items()})
    return load_config(env={}, overrides=dotted)


OPEN = {
    "webhook.allowed_url_prefixes": ["http://", "https://"],
    "slack.allowed_url_prefixes": ["http://", "https://"],
}

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the cloud metadata service
    "100.64.0.1",  # shared address space
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[ff02::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 form of 169.254.169.254
    "[2002:a9fe:a9fe::1]",  # 6to4 form of 169.254.169.254
]


@pytest.mark.parametrize("host", REFUSED)
def test_non_public_addresses_are_refused_for_webhooks_and_slack(host: str) -> None:
    conf = notifications(**OPEN)
    for check in (check_user_webhook, check_user_slack_url):
        with pytest.raises(UnsafeURLError, match="non-public address") as info:
            check(f"http://{host}:8080/hook", conf)
        assert isinstance(info.value, ValueError) and info.value.permanent


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]"])
def test_public_addresses_pass(host: str) -> None:
    url = f"https://{host}/hook"
    assert check_user_webhook(url, notifications(**OPEN)) == url


def test_allowed_networks_are_the_only_exception() -> None:
    conf = notifications(**OPEN, **{"webhook.allowed_networks": ["127.0.0.0/8", "fd00::/8"]})
    for url in ("http://127.0.0.1:9/", "http://[::ffff:127.0.0.2]/", "http://[fd00::5]/"):
        assert check_user_webhook(url, conf) == url
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/"):
        with pytest.raises(UnsafeURLError):
            check_user_webhook(url, conf)
    with pytest.raises(UnsafeURLError):  # the Slack section has its own list
        check_user_slack_url("http://127.0.0.1:9/", conf)


def test_by_default_users_may_not_name_webhooks_at_all() -> None:
    conf = notifications()
    assert conf.webhook.allowed_url_prefixes == []
    with pytest.raises(UnsafeURLError, match="disabled"):
        check_user_webhook("https://8.8.8.8/hook", conf)
    with pytest.raises(UnsafeURLError, match="not allowed"):  # Slack: hooks.slack.com only
        check_user_slack_url("https://8.8.8.8/services/x", conf)


@pytest.mark.parametrize(
    "url",
    ["ftp://8.8.8.8/x", "http://user:pw@8.8.8.8/x", "http://8.8.8.8\\@10.0.0.1/", "http:///x"],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_user_webhook(url, notifications(**OPEN))


def test_every_address_of_a_name_must_be_public() -> None:
    policy = notifications(**OPEN).webhook
    with pytest.raises(UnsafeURLError, match=re.escape("10.0.0.7")):
        check_url(
            "https://hook.test/", policy, "webhook", resolver=lambda h, p: ["8.8.8.8", "10.0.0.7"]
        )

    def no_answer(host: str, port: int) -> list[str]:
        raise UnsafeURLError(f"cannot resolve {host}", permanent=False)

    with pytest.raises(UnsafeURLError) as info:
        check_url("https://hook.test/", policy, "webhook", resolver=no_answer)
    assert info.value.permanent is False  # the notifier retries later


def test_the_connection_goes_to_the_checked_address_not_a_second_answer(
    http_receiver: HttpReceiver,  # noqa: F811 (fixture)
) -> None:
    """DNS rebinding: the first answer is checked; a second lookup would get 127.0.0.2."""
    answers = [["127.0.0.1"], ["127.0.0.2"]]  # nothing listens on 127.0.0.2

    def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    policy = notifications(
        **{"webhook.allowed_url_prefixes": ["http://"], "webhook.allowed_networks": ["127.0.0.1"]}
    ).webhook
    url = f"http://rebind.test:{http_receiver.port}/hook?x=1"
    checked = check_url(url, policy, "webhook", resolver=rebinding)
    assert post_checked(checked, b"{}", {"Content-Type": "application/json"}, 5.0) == 200
    assert len(answers) == 1  # resolved once
    [request] = http_receiver.received("/hook?x=1")
    assert request.headers["Host"] == f"rebind.test:{http_receiver.port}"


# --------------------------------------------------------------------------- notifier


def _deliveries(db: Database[Any], event_id: str) -> dict[str, dict[str, Any]]:
    return {d["channel"]: d for d in db.deliveries.find({"event_id": event_id})}


def test_notifier_default_refuses_a_user_webhook_for_good(
    config: Config, db: Database[Any], http_receiver: HttpReceiver  # noqa: F811 (fixture)
) -> None:
    cfg = with_db(config)
    url = f"https://127.0.0.1:{http_receiver.port}/hook"
    add_submission(db, 31, {"methods": ["webhook"], "params": {"webhook": {"url": url}}})
    event_id = add_event(db, 31)
    counts = run_once(db, cfg)
    assert (counts.failed, counts.retry, counts.delivered_events) == (1, 0, 1)
    assert "disabled" in _deliveries(db, event_id)["webhook"]["last_error"]


def test_notifier_refuses_loopback_unless_allowed_and_trusts_the_operator_slack_url(
    config: Config, db: Database[Any], http_receiver: HttpReceiver  # noqa: F811 (fixture)
) -> None:
    cfg = with_db(
        config,
        **{
            "webhook.allowed_url_prefixes": ["http://127.0.0.1:"],
            "slack.allowed_url_prefixes": ["http://localhost:"],
            "slack.webhook_url": http_receiver.url + "/operator",
        },
    )
    params = {
        "webhook": {"url": http_receiver.url + "/hook"},
        "slack": {"webhook_url": f"http://localhost:{http_receiver.port}/user-slack"},
    }
    add_submission(db, 32, {"methods": ["webhook", "slack"], "params": params})
    user_event = add_event(db, 32)
    add_submission(db, 33, {"methods": ["slack"], "params": {}})  # the operator's channel
    operator_event = add_event(db, 33)
    counts = run_once(db, cfg)
    assert (counts.sent, counts.failed) == (1, 2)
    refused = _deliveries(db, user_event)
    assert {d["status"] for d in refused.values()} == {"failed"}
    assert all("non-public" in d["last_error"] for d in refused.values())
    assert _deliveries(db, operator_event)["slack"]["status"] == "sent"
    assert [r.path for r in http_receiver.received()] == ["/operator"]


def test_notifier_does_not_follow_redirects(
    config: Config, db: Database[Any], http_receiver: HttpReceiver  # noqa: F811 (fixture)
) -> None:
    cfg = with_db(
        config,
        **{
            "webhook.allowed_url_prefixes": ["http://127.0.0.1:"],
            "webhook.allowed_networks": ["127.0.0.1/32"],
        },
    )
    http_receiver.redirects["/hook"] = http_receiver.url + "/internal"
    add_submission(
        db,
        34,
        {"methods": ["webhook"], "params": {"webhook": {"url": http_receiver.url + "/hook"}}},
    )
    event_id = add_event(db, 34)
    assert run_once(db, cfg).failed == 1
    assert "redirect" in _deliveries(db, event_id)["webhook"]["last_error"]
    assert [r.path for r in http_receiver.received()] == ["/hook"]


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``hook.test`` only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hook.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hook.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert_file))
    try:
        yield server.server_address[1], client_context
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_tls_to_the_pinned_address_verifies_the_certificate_for_the_name(
    tls_receiver: tuple[int, ssl.SSLContext],
) -> None:
    port, context = tls_receiver
    policy = notifications(
        **{"webhook.allowed_url_prefixes": ["https://"], "webhook.allowed_networks": ["127.0.0.1"]}
    ).webhook
    loopback = lambda host, p: ["127.0.0.1"]  # noqa: E731
    good = check_url(f"https://hook.test:{port}/h", policy, "webhook", resolver=loopback)
    assert post_checked(good, b"{}", {}, 5.0, ssl_context=context) == 204
    other = check_url(f"https://other.test:{port}/h", policy, "webhook", resolver=loopback)
    with pytest.raises(Exception) as info:  # urllib3 wraps the ssl error
        post_checked(other, b"{}", {}, 5.0, ssl_context=context)
    assert "certificate" in str(info.value).lower() or "hostname" in str(info.value).lower()
