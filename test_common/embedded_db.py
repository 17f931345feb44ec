"""Start, check and stop the embedded MongoDB-compatible server (SecantusDB).

It runs as its own process (``secantusd-py``) on a free loopback port with a
data directory, and is stopped by the PID recorded in that directory, so a
later shell, ``dev.sh`` or the test suite can find it again. Used by
``scripts/embedded_db.sh`` and by the pytest fixtures.

    python -m test_common.embedded_db up [--dir DIR]     # prints the URI
    python -m test_common.embedded_db status [--dir DIR]
    python -m test_common.embedded_db down [--dir DIR] [--purge]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pymongo

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "var" / "embedded-db"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    """A running embedded server."""

    pid: int
    port: int
    directory: Path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _answers(uri: str, timeout_ms: int = 500) -> bool:
    client: pymongo.MongoClient = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def status(directory: Path = DEFAULT_DIR) -> Server | None:
    """The server recorded in ``directory`` if it is alive and answers."""
    try:
        pid = int((directory / "server.pid").read_text())
        port = int((directory / "server.port").read_text())
    except (OSError, ValueError):
        return None
    server = Server(pid, port, directory)
    if _alive(pid) and _answers(server.uri):
        return server
    return None


def up(directory: Path = DEFAULT_DIR, port: int | None = None) -> Server:
    """Start a server on ``directory`` unless one already runs there."""
    running = status(directory)
    if running:
        return running
    directory.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    exe = Path(sys.executable).with_name("secantusd-py")
    if not exe.exists():
        exe = Path(shutil.which("secantusd-py") or "secantusd-py")
    log = (directory / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            str(exe),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(directory / "data"),
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    (directory / "server.pid").write_text(str(proc.pid))
    (directory / "server.port").write_text(str(port))
    server = Server(proc.pid, port, directory)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"secantusd-py exited with {proc.returncode}; see {directory / 'server.log'}"
            )
        if _answers(server.uri, 300):
            return server
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"secantusd-py did not answer in {START_TIMEOUT_S:.0f} s")


def down(directory: Path = DEFAULT_DIR, purge: bool = False, timeout: float = 20.0) -> bool:
    """Stop the server recorded in ``directory``; True if one was running."""
    was_running = False
    try:
        pid = int((directory / "server.pid").read_text())
    except (OSError, ValueError):
        pid = 0
    if pid and _alive(pid):
        was_running = True
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for name in ("server.pid", "server.port"):
        (directory / name).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(directory, ignore_errors=True)
    return was_running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embedded_db", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("CLOCKWORK_DB_DIR", DEFAULT_DIR))
    )
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--purge", action="store_true", help="with down: delete the data")
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    if args.command == "up":
        try:
            server = up(directory, args.port)
        except RuntimeError as exc:
            print(f"embedded_db: {exc}", file=sys.stderr)
            return 1
        print(server.uri)
        return 0
    if args.command == "status":
        server = status(directory)
        if server is None:
            print(f"embedded_db: not running ({directory})", file=sys.stderr)
            return 3
        print(f"running pid={server.pid} uri={server.uri} data={directory / 'data'}")
        return 0
    stopped = down(directory, purge=args.purge)
    print("stopped" if stopped else "was not running", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
