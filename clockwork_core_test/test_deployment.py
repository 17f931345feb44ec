"""The deployment files: no Docker engine runs here, so parse and check them."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent


#: What an operator sets (in the environment or .env) for ``docker compose up``.
OPERATOR_ENV = {"MONGO_ROOT_PASSWORD": "pw", "CLOCKWORK_SECRET_KEY": "k" * 32}
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` as docker compose expands them."""

    def expand(match: re.Match[str]) -> str:
        name, op, arg, bare = match.groups()
        value = env.get(name or bare)
        if (op in (":-", ":?") and not value) or (op in ("-", "?") and value is None):
            if op.endswith("?"):
                raise AssertionError(f"compose would stop: {name}: {arg}")
            return arg
        return value or ""

    return _VARIABLE.sub(expand, value.replace("$$", "\0")).replace("\0", "$")


def image_environment() -> dict[str, str]:
    """The environment the Dockerfile's ``ENV`` lines give every container."""
    text = (ROOT / "clockwork_dev.Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        env.update(pair.split("=", 1) for pair in line.split())
    return env


def container_environment(compose: dict, service: str) -> dict[str, str]:
    """The environment a service's container gets: the image's, then the
    compose file's (which wins), interpolated from :data:`OPERATOR_ENV`."""
    declared = compose["services"][service].get("environment", {})
    return {
        **image_environment(),
        **{k: interpolate(str(v), OPERATOR_ENV) for k, v in declared.items()},
    }


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """gunicorn.conf.py's settings as gunicorn reads them, under ``env`` only."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def published_container_port(spec: dict) -> int:
    """The container port of a service's one published port (``[IP:]HOST:CONTAINER``)."""
    (mapping,) = spec["ports"]
    return int(str(mapping).rsplit(":", 1)[1].split("/")[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks a route
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_services(compose: dict) -> None:
    services = compose["services"]
    assert {"mongo", "web", "scraper", "notifier", "submitter", "prometheus"} <= set(services)
    assert services["prometheus"]["profiles"] == ["monitoring"]


def test_mongo_is_the_official_image_with_auth_and_a_volume(compose: dict) -> None:
    mongo = compose["services"]["mongo"]
    assert re.fullmatch(r"mongo:\d+(\.\d+)*", mongo["image"])
    assert mongo["environment"]["MONGO_INITDB_ROOT_USERNAME"]
    assert "${MONGO_ROOT_PASSWORD" in mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"]
    assert any(v.startswith("mongo-data:") for v in mongo["volumes"])
    assert "mongo-data" in compose["volumes"]
    assert "healthcheck" in mongo


def test_web_runs_gunicorn_on_loopback_port(compose: dict) -> None:
    web = compose["services"]["web"]
    assert web["command"][0] == "gunicorn"
    assert "clockwork_web.wsgi:app" in web["command"]
    assert web["ports"] == ["127.0.0.1:8000:8000"]


@pytest.mark.parametrize("source", ["compose web service", "image alone"])
def test_gunicorn_binds_the_published_port_on_every_interface(compose: dict, source: str) -> None:
    """What gunicorn.conf.py reads from the environment the container gets is the
    port published (compose) or exposed and health-checked (the image), on all
    interfaces: a published port reaches the container's own address, never its
    loopback."""
    dockerfile = (ROOT / "clockwork_dev.Dockerfile").read_text()
    if source == "image alone":
        env = image_environment()
        (port,) = map(int, re.findall(r"^EXPOSE (\d+)", dockerfile, re.M))
    else:
        env = container_environment(compose, "web")
        port = published_container_port(compose["services"]["web"])
    bind = gunicorn_settings(env)["bind"]
    host, _, bound_port = bind.rpartition(":")
    assert int(bound_port) == port, f"gunicorn binds {bind}, the container publishes {port}"
    assert host in ("0.0.0.0", "[::]", ""), f"gunicorn binds {bind}: unreachable from outside"
    healthcheck = re.search(r"^\s+CMD .*http://127\.0\.0\.1:(\d+)/healthz", dockerfile, re.M)
    assert healthcheck and int(healthcheck[1]) == port


@contextmanager
def gunicorn_running(args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    """``gunicorn ARGS`` (this interpreter's) in the repository, under ``env``
    plus this PATH; its output goes to ``log``; stopped at the end."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *args],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
        assert server.poll() is None, log.read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def get_when_up(url: str, log: Path, timeout: float = 30) -> requests.Response:
    """GET ``url`` once something answers there (``timeout`` seconds at most)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing answers at {url}\n{log.read_text()}") from None
            time.sleep(0.1)


def _app_config(tmp_path: Path) -> Path:
    config = tmp_path / "clockwork.toml"
    config.write_text('[web]\nsecret_key = "deployment-test-secret-key-0123456789"\n')
    return config


def test_gunicorn_serves_with_the_compose_environment(
    compose: dict, mongo_uri: str, tmp_path: Path
) -> None:
    """gunicorn started as the web service starts it (its command, the file,
    the environment compose gives it; one worker) answers /healthz where
    compose says it listens, on every interface. The port moves to a free one
    (8000 may be taken here), in whichever variable holds it; the configuration
    file and database are this test's (./deploy and the mongo service exist
    only in a deployment)."""
    web = compose["services"]["web"]
    assert web["command"][0] == "gunicorn"
    port = published_container_port(web)
    free = _free_port()
    env = {
        k: re.sub(rf":{port}$", f":{free}", v)
        for k, v in container_environment(compose, "web").items()
    }
    env.update(
        CLOCKWORK_CONFIG=str(_app_config(tmp_path)), MONGODB_URI=mongo_uri, CLOCKWORK_WORKERS="1"
    )
    log = tmp_path / "gunicorn.log"
    with gunicorn_running(web["command"][1:], env, log):
        for host in ["127.0.0.1", *filter(None, [_non_loopback_address()])]:
            response = get_when_up(f"http://{host}:{free}/healthz", log)
            assert response.status_code == 200, response.text
            assert response.json()["database"] == "ok"


def test_connections_that_send_nothing_do_not_keep_clients_out(
    mongo_uri: str, tmp_path: Path
) -> None:
    """A worker (production settings) holding a dozen connections on which
    nothing was sent yet (a browser's preconnects, a slow network) still
    accepts and answers a new client at once; it used to accept no more than
    twice its threads, and the newcomer waited in the listen queue until the
    silent ones timed out (about 10 s)."""
    port = _free_port()
    env = {
        "CLOCKWORK_CONFIG": str(_app_config(tmp_path)),
        "MONGODB_URI": mongo_uri,
        "CLOCKWORK_BIND": f"127.0.0.1:{port}",
        "CLOCKWORK_WORKERS": "1",
        "CLOCKWORK_ACCESS_LOG": os.devnull,
    }
    log = tmp_path / "gunicorn.log"
    url = f"http://127.0.0.1:{port}/healthz"
    with gunicorn_running(["--config", "gunicorn.conf.py", "clockwork_web.wsgi:app"], env, log):
        assert get_when_up(url, log).status_code == 200
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        try:
            time.sleep(0.3)  # the worker has seen them
            started = time.monotonic()
            try:
                response = requests.get(url, timeout=3)
            except requests.Timeout:
                pytest.fail("a new client waited more than 3 s behind 12 silent connections")
            assert response.status_code == 200
            assert time.monotonic() - started < 3
        finally:
            for sock in silent:
                sock.close()


@pytest.mark.parametrize("service", ["web", "scraper", "notifier", "submitter"])
def test_app_services_get_config_and_secrets_from_the_environment(
    compose: dict, service: str
) -> None:
    spec = compose["services"][service]
    env = spec["environment"]
    assert env["CLOCKWORK_CONFIG"] == "/etc/clockwork/clockwork.toml"
    assert "@mongo:27017" in env["MONGODB_URI"]
    assert "${MONGO_ROOT_PASSWORD" in env["MONGODB_URI"]
    assert env["CLOCKWORK_SECRET_KEY"].startswith("${")
    assert spec["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_scraper_runs_on_a_schedule(compose: dict) -> None:
    command = compose["services"]["scraper"]["command"]
    assert command[:4] == ["python", "-m", "slurm_state", "watch"]
    assert "--every" in command


def test_no_secret_literals() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN)[A-Z_]*:\s*\S", line):
            assert "${" in line, line


def test_dockerfile_copies_what_exists_and_runs_gunicorn() -> None:
    text = (ROOT / "clockwork_dev.Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    for source in re.findall(r"^COPY (.+) \./", text, re.M):
        for name in source.split():
            assert (ROOT / name).exists(), f"COPY {name}: not in the repository"
    assert re.search(r'^CMD \["gunicorn".*"clockwork_web.wsgi:app"\]', text, re.M)
    assert re.search(r"^USER clockwork", text, re.M)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={"MONGO_ROOT_PASSWORD": "x", "CLOCKWORK_SECRET_KEY": "y", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("service", ["scraper", "notifier", "submitter"])
def test_service_commands_exist(compose: dict, service: str) -> None:
    """Each background service's command answers --help: the module and flags exist."""
    command = compose["services"][service]["command"]
    assert command[:2] == ["python", "-m"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            *command[2:3],
            *([command[3]] if service == "scraper" else []),
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for flag in [arg for arg in command[3:] if arg.startswith("--")]:
        assert flag in result.stdout, f"{flag} not in {service}'s --help"
