"""Retries, timeouts and error mapping against a tiny real HTTP server on loopback.

The server answers from a script of (status, headers, body) per request and
records what it received, so the tests see exactly how many requests the
client sent: GETs are retried on 429/502/503/504, POSTs never are.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import clockwork_tools as cw


class _Script:
    def __init__(self) -> None:
        self.responses: list[tuple[int, dict[str, str], bytes]] = []
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.delay = 0.0
        self.lock = threading.Lock()

    def next(self) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self.responses:
                return self.responses.pop(0)
        return 200, {"Content-Type": "application/json"}, b"{}"


def _handler(script: _Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append((self.command, self.path, dict(self.headers), body))
            if script.delay:
                time.sleep(script.delay)
            status, headers, payload = script.next()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub() -> Iterator[tuple[str, _Script]]:
    script = _Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _json(status: int, data: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": code, "message": message}})


def _client(url: str, **kwargs: Any) -> cw.Client:
    client = cw.Client(url, "cw_test", backoff=0.001, env={}, config_file="/nonexistent", **kwargs)
    return client


def test_get_is_retried_on_503_then_succeeds(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [
        _error(503, "unavailable", "db down"),
        _error(502, "bad_gateway", "proxy"),
        _json(200, {"email": "a@example.org", "roles": ["user"]}),
    ]
    with _client(url) as client:
        user = client.me()
    assert user.email == "a@example.org"
    assert [m for m, *_ in script.seen] == ["GET", "GET", "GET"]
    assert script.seen[0][2]["Authorization"] == "Bearer cw_test"


def test_get_gives_up_after_the_retries_with_server_error(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [_error(503, "unavailable", "the database is unavailable")] * 5
    with _client(url, retries=2) as client, pytest.raises(cw.ServerError) as info:
        client.me()
    assert len(script.seen) == 3
    err = info.value
    assert err.status_code == 503 and err.code == "unavailable"
    assert err.message == "the database is unavailable"
    assert err.response is not None and err.request is not None
    assert isinstance(err, cw.HTTPStatusError) and isinstance(err, cw.ClockworkError)


def test_post_is_never_retried(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [_error(503, "unavailable", "cluster unreachable"), _json(201, {})]
    with _client(url) as client, pytest.raises(cw.ServerError):
        client.cancel("abc")
    assert [(m, p) for m, p, *_ in script.seen] == [("POST", "/api/v1/submissions/abc/cancel")]


def test_500_is_not_retried(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [_error(500, "internal_error", "internal error")]
    with _client(url) as client, pytest.raises(cw.ServerError):
        client.clusters()
    assert len(script.seen) == 1


def test_429_honours_retry_after_and_then_raises_rate_limit(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [
        _json(429, {"error": {"code": "too_many", "message": "slow"}}, **{"Retry-After": "0"})
    ] * 2
    with _client(url, retries=1) as client, pytest.raises(cw.RateLimitError) as info:
        client.me()
    assert info.value.retry_after == 0.0
    assert len(script.seen) == 2


def test_backoff_grows_and_is_capped(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [_error(504, "timeout", "gw")] * 4
    waits: list[float] = []
    client = cw.Client(url, "cw_x", backoff=0.5, retries=3, env={}, config_file="/nonexistent")
    client._sleep = waits.append
    with client, pytest.raises(cw.ServerError):
        client.me()
    assert waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, cw.BadRequestError),
        (422, cw.BadRequestError),
        (401, cw.AuthenticationError),
        (403, cw.PermissionDeniedError),
        (404, cw.NotFoundError),
        (409, cw.ConflictError),
        (418, cw.HTTPStatusError),
    ],
)
def test_status_classes(stub: tuple[str, _Script], status: int, cls: type) -> None:
    url, script = stub
    script.responses = [_error(status, "some_code", "what went wrong")]
    with _client(url) as client, pytest.raises(cls) as info:
        client.me()
    assert info.value.status_code == status
    assert "what went wrong" in str(info.value)


def test_a_non_json_error_body_still_gives_a_message(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [(502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>")] * 4
    with _client(url, retries=0) as client, pytest.raises(cw.ServerError) as info:
        client.me()
    assert info.value.message == "Bad Gateway"


def test_read_timeout_raises_timeout(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.delay = 0.5
    with _client(url, timeout=0.1, retries=0) as client, pytest.raises(cw.Timeout) as info:
        client.me()
    assert isinstance(info.value, cw.TransportError)
    assert "0.1 s" in str(info.value)


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on port any more
    refused = _client(f"http://127.0.0.1:{port}", retries=1)
    with refused as client, pytest.raises(cw.TransportError) as info:
        client.me()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert not isinstance(info.value, cw.HTTPStatusError)


def test_redirects_are_not_followed(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [(302, {"Location": "/login?next=/api/v1/me"}, b"")]
    with _client(url) as client, pytest.raises(cw.HTTPStatusError) as info:
        client.me()
    assert "redirect" in str(info.value)


def test_iter_jobs_follows_next_links_lazily(stub: tuple[str, _Script]) -> None:
    url, script = stub

    def job(i: int) -> dict[str, Any]:
        return {"slurm": {"cluster_name": "c", "job_id": i, "job_state": "RUNNING"}, "cw": {}}

    script.responses = [
        _json(200, {"items": [job(1), job(2)], "total": 3, "page": 1, "per_page": 2,
                    "next": "/api/v1/jobs?page=2&per_page=2&state=RUNNING"}),
        _json(200, {"items": [job(3)], "total": 3, "page": 2, "per_page": 2, "next": None}),
    ]  # fmt: skip
    with _client(url) as client:
        jobs = client.iter_jobs(state="RUNNING", per_page=2)
        assert script.seen == []  # nothing fetched before the first item is asked for
        first = next(jobs)
        assert len(script.seen) == 1
        rest = list(jobs)
    assert [j.job_id for j in [first, *rest]] == [1, 2, 3]
    assert script.seen[0][1] == "/api/v1/jobs?state=RUNNING&per_page=2"
    assert script.seen[1][1] == "/api/v1/jobs?page=2&per_page=2&state=RUNNING"


def test_next_link_to_another_host_is_not_followed(stub: tuple[str, _Script]) -> None:
    url, script = stub
    script.responses = [
        _json(200, {"items": [{"slurm": {"cluster_name": "c", "job_id": 1}}], "total": 2,
                    "page": 1, "per_page": 1, "next": "http://evil.example/api/v1/jobs?page=2"}),
        _json(200, {"items": [{"slurm": {"cluster_name": "c", "job_id": 2}}], "total": 2,
                    "page": 2, "per_page": 1, "next": None}),
    ]  # fmt: skip
    with _client(url) as client:
        assert [j.job_id for j in client.iter_jobs(per_page=1)] == [1, 2]
    assert script.seen[1][1] == "/api/v1/jobs?per_page=1&page=2"
