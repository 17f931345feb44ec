"""The deployment files: no Docker engine runs here, so parse and check them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


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
    assert web["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"


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
