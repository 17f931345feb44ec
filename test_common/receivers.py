"""Real receivers for notification tests: an SMTP server process, an HTTP receiver, RabbitMQ.

Fixtures (import them into a test module)::

    from test_common.receivers import http_receiver, rabbitmq_queue, smtp_server  # noqa: F401

- ``smtp_server``: ``python -m aiosmtpd`` in its own process on a free port,
  storing every message in a Maildir (``SmtpServer.messages()`` reads them);
- ``http_receiver``: an ``http.server`` in a thread that records each request
  (Slack and webhook targets); it can answer an error status or hold requests;
- ``rabbitmq_queue``: the RabbitMQ server on this machine (127.0.0.1:5672,
  guest/guest), a unique queue name, deleted afterwards; skips with a one-line
  reason when the server is not reachable.

Waits poll with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import mailbox
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

RABBITMQ_URL = os.environ.get(
    "CLOCKWORK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:g}s")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpServer:
    host: str
    port: int
    maildir: Path
    process: subprocess.Popen[bytes]

    def messages(self) -> list[Message]:
        box = mailbox.Maildir(self.maildir, create=False)
        try:
            return [box.get_message(key) for key in sorted(box.keys())]
        finally:
            box.close()

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Message]:
        return wait_for(lambda: (m := self.messages()) and len(m) >= count and m, timeout)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP server process (aiosmtpd) writing to a Maildir."""
    port = free_port()
    maildir = tmp_path / "maildir"
    mailbox.Maildir(maildir, create=True).close()
    log = (tmp_path / "smtp.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(maildir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: process.poll() is not None or _port_open(port), timeout=15)
        if process.poll() is not None:
            raise RuntimeError(f"aiosmtpd exited: {(tmp_path / 'smtp.log').read_text()}")
        yield SmtpServer("127.0.0.1", port, maildir, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


# --------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records requests; ``statuses`` (a queue of codes) and ``hold`` shape the answers."""

    port: int
    requests: list[Received] = field(default_factory=list)
    #: status codes to answer next, in order (then 200)
    statuses: list[int] = field(default_factory=list)
    #: while set, a request whose path is in ``hold_paths`` is recorded, then held
    hold_paths: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    #: path -> Location: a request to that path is recorded, then answered 307
    redirects: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        return wait_for(lambda: (r := self.received(path)) and len(r) >= count and r, timeout)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A local HTTP server (in a thread) recording POSTs, for Slack and webhooks."""
    receiver = HttpReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                hold = self.path in receiver.hold_paths
                location = receiver.redirects.get(self.path)
            if hold:
                receiver.release.wait(timeout=60)
            try:
                self.send_response(307 if location else status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the client went away (a killed notifier)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="http-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- RabbitMQ


@dataclass
class RabbitQueue:
    url: str
    name: str

    def get_all(self, timeout: float = 0.0) -> list[tuple[Any, bytes]]:
        """Consume every message now in the queue: ``(properties, body)`` pairs."""
        import pika

        messages: list[tuple[Any, bytes]] = []
        params = pika.URLParameters(self.url)
        params.socket_timeout = 5
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            channel = connection.channel()
            deadline = time.monotonic() + timeout
            while True:
                method, properties, body = channel.basic_get(self.name, auto_ack=True)
                if method is None:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
                    continue
                messages.append((properties, body))
        return messages


def rabbitmq_unavailable() -> str | None:
    try:
        import pika

        params = pika.URLParameters(RABBITMQ_URL)
        params.socket_timeout = 2
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()
    except Exception as exc:
        return f"RabbitMQ not reachable at {RABBITMQ_URL}: {type(exc).__name__}"
    return None


@pytest.fixture
def rabbitmq_queue() -> Iterator[RabbitQueue]:
    """A unique, durable queue name on the local RabbitMQ; deleted afterwards."""
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    import pika

    queue = RabbitQueue(RABBITMQ_URL, f"clockwork.test.{uuid.uuid4().hex[:12]}")
    try:
        yield queue
    finally:
        params = pika.URLParameters(RABBITMQ_URL)
        params.socket_timeout = 5
        with contextlib.closing(pika.BlockingConnection(params)) as connection:
            connection.channel().queue_delete(queue=queue.name)
