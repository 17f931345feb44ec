"""A real OpenSSH server on a loopback port, for the SSH fetcher's tests.

Everything lives in a temporary directory: the server's own ed25519 host key,
client keys of each type the fetcher supports (ed25519, ECDSA, RSA), the
authorized_keys file and a ``known_hosts`` that lists the host key. It runs as
root (so it can run Slurm commands as the scraper would) and is stopped by its
PID. Needs ``/usr/sbin/sshd`` (Debian package ``openssh-server``; ``test.sh``
installs it); the fixture skips with a one-line reason without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
START_TIMEOUT_S = 20.0
KEY_TYPES = ("ed25519", "ecdsa", "rsa")


@dataclass(frozen=True)
class SshServer:
    """A running sshd and what a client needs to reach it."""

    host: str
    port: int
    user: str
    directory: Path
    known_hosts: Path
    keys: dict[str, Path]  # key type -> private key file
    pid: int

    @property
    def host_public_key(self) -> str:
        return (self.directory / "ssh_host_ed25519_key.pub").read_text().strip()


def unavailable_reason() -> str | None:
    """None if an sshd can be started here, else a one-line reason."""
    if not SSHD.is_file():
        return f"{SSHD} is missing (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "sshd tests need root (sshd must switch users)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(kind: str, path: Path) -> None:
    bits = ["-b", "3072"] if kind == "rsa" else (["-b", "256"] if kind == "ecdsa" else [])
    subprocess.run(
        [
            SSH_KEYGEN,
            "-q",
            "-t",
            kind,
            *bits,
            "-N",
            "",
            "-C",
            f"clockwork-test-{kind}",
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def start(directory: Path, user: str = "root") -> tuple[SshServer, subprocess.Popen[bytes]]:
    """Generate keys and config in ``directory`` and start sshd on a free port."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    host_key = directory / "ssh_host_ed25519_key"
    _keygen("ed25519", host_key)
    keys: dict[str, Path] = {}
    for kind in KEY_TYPES:
        keys[kind] = directory / f"client_{kind}"
        _keygen(kind, keys[kind])
    authorized = directory / "authorized_keys"
    authorized.write_text("".join(Path(f"{k}.pub").read_text() for k in keys.values()))
    os.chmod(authorized, 0o600)
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                "StrictModes no",
                f"AllowUsers {user}",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    log = (directory / "sshd.log").open("ab")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if proc.poll() is not None:
            raise RuntimeError(
                f"sshd exited {proc.returncode}: {(directory / 'sshd.log').read_text()[-500:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not answer on port {port} in {START_TIMEOUT_S:g}s")
        time.sleep(0.05)
    known_hosts = directory / "known_hosts"
    key_type, key_b64 = (directory / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    server = SshServer("127.0.0.1", port, user, directory, known_hosts, keys, proc.pid)
    return server, proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the sshd we started (by its PID), and its session children."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd on loopback for the session (skips when it cannot run here)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server, proc = start(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop(proc)
