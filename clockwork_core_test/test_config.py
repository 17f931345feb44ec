"""The configuration loader: layering, validation that reports every problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clockwork_core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "clockwork.example.toml", env={})
    assert "mila" in config.clusters
    assert config.clusters["mila"].ssh is not None
    assert config.clusters["mila"].submit.backend == "slurmrestd"
    assert config.templates["python"].slurm["cpus_per_task"] == 2


def test_defaults_without_file() -> None:
    config = load_config(env={})
    assert config.database.name == "clockwork"
    assert config.web.dev_login is False
    assert config.web.provisioning == "preprovisioned"
    assert config.clusters == {}


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nuri = "mongodb://file:1"\nname = "fromfile"\n')
    env = {"MONGODB_URI": "mongodb://env:2", "CLOCKWORK_SECRET_KEY": "s3cret"}
    config = load_config(path, env=env)
    assert config.database.uri == "mongodb://env:2"
    assert config.database.name == "fromfile"
    assert config.web.secret_key is not None
    assert config.web.secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_config_env_variable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nname = "viaenv"\n')
    assert load_config(env={"CLOCKWORK_CONFIG": str(path)}).database.name == "viaenv"


BROKEN = """
[database]
uri = "postgres://nope"
timeout_ms = -1

[web]
provisioning = "everyone"
per_page_default = 5000
colour = "blue"

[clusters."bad name"]
fetch = "local"

[clusters.mila]
fetch = "ssh"

[clusters.narval]
fetch = "carrier-pigeon"
anonymize = { usernames = "pseudonymize" }
"""


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    keys = {key for key, _ in info.value.problems}
    assert {
        "database.uri",
        "database.timeout_ms",
        "web.provisioning",
        "web.per_page_default",
        "web.colour",
        "clusters.bad name",
        "clusters.mila",
        "clusters.narval.fetch",
    } <= keys
    message = str(info.value)
    assert str(path) in message
    assert "must start with mongodb://" in message
    assert 'fetch = "ssh" needs' in message


def test_missing_anonymize_key_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"clusters": {"c1": {"anonymize": {"job_names": "hash"}}}})
    assert "scraper.anonymize_key" in str(info.value)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text("[database\nuri = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems[0][0] == "(syntax)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_command_line_check_prints_problems_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "clockwork_core.config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(lines) >= 8  # one line per problem
    assert any(line.strip().startswith("web.colour:") for line in lines)
