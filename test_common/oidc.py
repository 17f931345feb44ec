"""The ``oidc_provider`` pytest fixture: a real OIDC provider process on loopback.

Suites that need it import the fixture in their conftest::

    from test_common.oidc import oidc_provider  # noqa: F401

and point the app at it with :meth:`OidcProvider.config_overrides`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


@dataclass
class OidcProvider:
    """A running provider process."""

    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen[bytes]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def set_next(self, **settings: Any) -> None:
        """Alter the next ID token: bad_signature, email_verified, wrong_audience, expired."""
        response = requests.post(f"{self.issuer}/test/settings", json=settings, timeout=5)
        response.raise_for_status()

    def reset(self) -> None:
        """Forget pending alterations (a test that did not log in after set_next)."""
        requests.post(
            f"{self.issuer}/test/settings",
            json={"bad_signature": False, "wrong_audience": False, "expired": False},
            timeout=5,
        ).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.issuer}/test/settings", timeout=5).json()

    def config_overrides(self) -> dict[str, Any]:
        """The ``load_config`` overrides that make the app log in here."""
        return {
            "login.provider_name": "test provider",
            "login.discovery_url": self.discovery_url,
            "login.client_id": self.client_id,
            "login.client_secret": self.client_secret,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_provider(directory: Path, users: dict[str, Any] | None = None) -> OidcProvider:
    """Start ``python -m test_common.oidc_provider`` and wait until it answers."""
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    users_file = directory / "oidc_users.json"
    users_file.write_text(json.dumps({"allow_any": True, "users": users or {}}))
    client_id, client_secret = "clockwork-test", "secret-" + os.urandom(8).hex()
    log = (directory / "oidc_provider.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "test_common.oidc_provider",
            "--port",
            str(port),
            "--issuer",
            issuer,
            "--users-file",
            str(users_file),
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    provider = OidcProvider(issuer, client_id, client_secret, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oidc_provider exited with {process.returncode}; see its log")
        try:
            if requests.get(provider.discovery_url, timeout=1).ok:
                return provider
        except requests.RequestException:
            pass
        time.sleep(0.05)
    stop_provider(provider)
    raise RuntimeError(f"oidc_provider did not answer within {START_TIMEOUT_S:.0f} s")


def stop_provider(provider: OidcProvider) -> None:
    if provider.process.poll() is None:
        provider.process.send_signal(signal.SIGTERM)
        try:
            provider.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            provider.process.kill()
            provider.process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID Connect provider process for the whole session."""
    provider = start_provider(tmp_path_factory.mktemp("oidc"))
    try:
        yield provider
    finally:
        stop_provider(provider)


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a Config with dotted-key ``overrides`` applied (validated again)."""
    data = config.model_dump()
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return type(config).model_validate(data)


@dataclass
class LoginResult:
    """What a login through the provider ended with."""

    response: Any  # the app's answer to the callback (Flask test response)
    callback_path: str  # path and query of the callback, to replay it


def login_via_oidc(
    client: Any, provider: OidcProvider, email: str, next_path: str = "/"
) -> LoginResult:
    """Drive the whole code flow: app -> provider (auto-approve ``email``) -> app callback.

    ``client`` is a Flask test client; the provider is reached over real HTTP.
    """
    from urllib.parse import quote, urlsplit

    start = client.get(f"/login/oidc?next={quote(next_path)}")
    assert start.status_code == 302, start.get_data(as_text=True)
    authorize_url = start.headers["Location"]
    assert authorize_url.startswith(provider.issuer + "/authorize"), authorize_url
    answer = requests.get(
        f"{authorize_url}&login_hint={quote(email)}&auto=1", allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    callback_path = f"{back.path}?{back.query}"
    return LoginResult(client.get(callback_path), callback_path)


def csrf_token_for(client: Any) -> str:
    """A CSRF token for the client's session (as a page would embed it)."""
    from flask_wtf.csrf import generate_csrf

    app = client.application
    with client.session_transaction() as sess:
        saved = dict(sess)
    with app.test_request_context():
        from flask import session

        session.update(saved)
        token = generate_csrf()
        saved_after = dict(session)
    with client.session_transaction() as sess:
        sess.update(saved_after)
    return token
