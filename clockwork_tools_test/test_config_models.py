"""Configuration layers, the small TOML reader, the Slurm environment and the models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import clockwork_tools as cw
from clockwork_tools._config import parse_simple_toml, resolve


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_arguments_beat_environment_beat_file(tmp_path: Path) -> None:
    conf = _write(tmp_path / "c.toml", 'url = "http://file:1"\ntoken = "cw_file"\ntimeout = 3\n')
    env = {"CLOCKWORK_URL": "http://env:2", "CLOCKWORK_TOKEN": "cw_env"}
    assert resolve(env={}, config_file=conf).url == "http://file:1"
    assert resolve(env={}, config_file=conf).token == "cw_file"
    assert resolve(env={}, config_file=conf).timeout == 3.0
    s = resolve(env=env, config_file=conf)
    assert (s.url, s.token, s.source) == ("http://env:2", "cw_env", "environment")
    s = resolve("http://arg:3/", "cw_arg", env=env, config_file=conf)
    assert (s.url, s.token) == ("http://arg:3", "cw_arg")


def test_original_email_and_api_key_give_basic_auth(tmp_path: Path) -> None:
    env = {
        "CLOCKWORK_URL": "http://x:1",
        "CLOCKWORK_EMAIL": "a@example.org",
        "CLOCKWORK_API_KEY": "cw_key",
    }
    s = resolve(env=env, config_file=tmp_path / "none.toml")
    assert (s.token, s.email, s.api_key) == (None, "a@example.org", "cw_key")
    client = cw.Client(env=env, config_file=tmp_path / "none.toml")
    assert client._session.auth == ("a@example.org", "cw_key")
    assert "Authorization" not in client._session.headers


def test_default_file_is_under_xdg_config_home(tmp_path: Path) -> None:
    _write(tmp_path / "clockwork" / "config.toml", 'url = "https://cw.example.org"\n')
    s = resolve(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert s.url == "https://cw.example.org" and s.token is None


def test_missing_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(cw.ConfigurationError, match="CLOCKWORK_URL"):
        cw.Client(env={}, config_file=tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("text", "match"),
    [('url = "http://x"\nbogus = 1\n', "unknown setting"), ("url = [", "c.toml")],
)
def test_bad_config_files_are_reported(tmp_path: Path, text: str, match: str) -> None:
    conf = _write(tmp_path / "c.toml", text)
    with pytest.raises(cw.ConfigurationError, match=match):
        resolve(env={}, config_file=conf)


def test_bad_url_and_timeout(tmp_path: Path) -> None:
    none = tmp_path / "none.toml"
    with pytest.raises(cw.ConfigurationError, match="http"):
        cw.Client("ftp://x", env={}, config_file=none)
    with pytest.raises(cw.ConfigurationError, match="timeout"):
        resolve("http://x", env={"CLOCKWORK_TIMEOUT": "soon"}, config_file=none)


def test_simple_toml_subset() -> None:
    text = "# comment\nurl = \"http://a:1\" # trailing\ntoken='cw_x'\ntimeout = 2.5\nverbose = true\n[other]\nx = 1\n"
    assert parse_simple_toml(text) == {
        "url": "http://a:1",
        "token": "cw_x",
        "timeout": 2.5,
        "verbose": True,
    }
    with pytest.raises(cw.ConfigurationError, match=":2:"):
        parse_simple_toml('url = "x"\nnonsense\n')


def test_current_job_from_the_slurm_environment() -> None:
    env = {"SLURM_JOB_ID": "4242", "SLURM_CLUSTER_NAME": "mila"}
    assert cw.current_job(env=env) == cw.JobRef("mila", 4242)
    # an array task: its own SLURM_JOB_ID is the id Clockwork stores
    env = {"SLURM_JOB_ID": "101", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "1",
           "SLURM_CLUSTER_NAME": "mila"}  # fmt: skip
    assert cw.current_job(env=env).job_id == 101
    assert cw.current_job("other", env=env).cluster == "other"
    with pytest.raises(cw.ConfigurationError, match="not inside a Slurm job"):
        cw.current_job(env={})
    with pytest.raises(cw.ConfigurationError, match="SLURM_CLUSTER_NAME"):
        cw.current_job(env={"SLURM_JOB_ID": "1"})


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01T08:00:00-04:00",
        "Wed, 01 May 2024 12:00:00 GMT",
        1714564800,
        {"$date": "2024-05-01T12:00:00Z"},
    ],
)
def test_times_are_parsed_to_aware_datetimes(value: object) -> None:
    from clockwork_tools._models import parse_datetime

    assert parse_datetime(value) == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_job_model_keeps_the_raw_document() -> None:
    doc = {
        "slurm": {"cluster_name": "mila", "job_id": 7, "job_state": "RUNNING", "name": "train",
                  "submit_time": "2024-05-01T12:00:00Z", "steps": [{"step_id": "batch"}],
                  "future_field": 1},
        "cw": {"user": "a@example.org"},
    }  # fmt: skip
    job = cw.Job.from_dict(doc)
    assert (job.cluster_name, job.job_id, job.job_state, job.user) == (
        "mila", 7, "RUNNING", "a@example.org",
    )  # fmt: skip
    assert job.submit_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert job.raw is doc and job.slurm["future_field"] == 1
    assert job.ref == cw.JobRef("mila", 7)
    assert cw.Job.from_dict({"cluster_name": "c", "job_id": 1}).job_state == "PENDING"


def test_page_model() -> None:
    page = cw.Page.from_dict(
        {"items": [{"slurm": {"cluster_name": "c", "name": "n1"}}], "total": 9, "page": 2,
         "per_page": 1, "next": "/x"},
        cw.Node.from_dict,
    )  # fmt: skip
    assert (len(page), page.total, page.page, page.next) == (1, 9, 2, "/x")
    assert [n.name for n in page] == ["n1"] and page[0].cluster_name == "c"
