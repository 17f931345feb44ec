"""The SSH fetcher against a real OpenSSH server on loopback (host keys checked)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from clockwork_core.config import SshConfig
from slurm_state.fetch import FetchError, SshRunner, parse_version
from test_common.sshd import SshServer, sshd_server  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("sshd_server")


def runner(server: SshServer, key: str = "ed25519", **kw: object) -> SshRunner:
    settings = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_file": str(server.keys[key]),
        "known_hosts": str(server.known_hosts),
        "connect_timeout_s": 5.0,
        "command_timeout_s": 20.0,
    }
    settings.update(kw)
    return SshRunner(SshConfig.model_validate(settings))


@pytest.mark.parametrize("key", ["ed25519", "ecdsa", "rsa"])
def test_runs_a_command_with_each_key_type(sshd_server: SshServer, key: str) -> None:  # noqa: F811
    r = runner(sshd_server, key)
    try:
        assert r.output(["echo", "hello", "world"]) == b"hello world\n"
    finally:
        r.close()


def test_arguments_reach_the_remote_side_verbatim(sshd_server: SshServer) -> None:  # noqa: F811
    nasty = "a b; touch /tmp/pwned-$(id -u) | `x` 'q' \"d\" é"
    r = runner(sshd_server)
    try:
        assert r.output(["printf", "%s\n", nasty]).decode() == nasty + "\n"
    finally:
        r.close()
    assert not list(Path("/tmp").glob("pwned-*"))


def test_exit_status_and_stderr_are_checked(sshd_server: SshServer) -> None:  # noqa: F811
    r = runner(sshd_server)
    try:
        with pytest.raises(FetchError, match=r"exited 3: boom"):
            r.output(["sh", "-c", "echo boom >&2; exit 3"])
        # the connection stays usable after a failed command
        assert r.output(["true"]) == b""
    finally:
        r.close()


def test_unknown_host_key_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:  # noqa: F811
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(FetchError, match="unknown host key"):
        runner(sshd_server, known_hosts=str(empty)).output(["true"])


def test_changed_host_key_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30
    )
    kind, b64 = (tmp_path / "other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {kind} {b64}\n")
    with pytest.raises(FetchError, match="does not match"):
        runner(sshd_server, known_hosts=str(known)).output(["true"])


def test_unreachable_host_is_a_clear_error(sshd_server: SshServer) -> None:  # noqa: F811
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(FetchError, match="cannot connect"):
        runner(sshd_server, port=port, connect_timeout_s=2.0).output(["true"])
    assert time.monotonic() - started < 10


def test_command_timeout(sshd_server: SshServer) -> None:  # noqa: F811
    r = runner(sshd_server, command_timeout_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match="timed out"):
            r.output(["sleep", "30"])
    finally:
        r.close()
    assert time.monotonic() - started < 15


def test_large_output_is_streamed(sshd_server: SshServer) -> None:  # noqa: F811
    r = runner(sshd_server)
    total = 0
    try:
        with r.stream(["head", "-c", "20000000", "/dev/zero"]) as out:
            while chunk := out.read(1 << 16):
                assert len(chunk) <= 1 << 16
                total += len(chunk)
    finally:
        r.close()
    assert total == 20_000_000


@pytest.mark.skipif(shutil.which("sacct") is None, reason="no sacct on this host")
def test_slurm_version_over_ssh(sshd_server: SshServer) -> None:  # noqa: F811
    r = runner(sshd_server)
    try:
        out = r.output(["sacct", "-V"])
    finally:
        r.close()
    assert parse_version(out).count(".") == 1
