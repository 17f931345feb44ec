"""Task validation, the batch script and REST body, and the submission state machine."""

from __future__ import annotations

import subprocess

import pytest

from clockwork_core.config import Config, load_config
from clockwork_web.errors import BadRequest
from clockwork_web.submissions.backends import _parse_job_id, mint_jwt, parse_squeue_line
from clockwork_web.submissions.service import (
    CANCELLING,
    PENDING,
    SUBMITTED,
    Event,
    InvalidTransition,
    expand_output_path,
    next_state,
)
from clockwork_web.submissions.task import (
    batch_script,
    parse_task,
    rest_body,
    sbatch_args,
    time_minutes,
)


@pytest.fixture
def cfg() -> Config:
    return load_config(
        env={},
        overrides={
            "clusters": {
                "testcluster": {"submit": {"backend": "local"}},
                "other": {"submit": {"backend": "slurmrestd"}},
            },
            "templates": {
                "gpu": {
                    "description": "one GPU",
                    "script": "module load cuda",
                    "slurm": {"gres": "gpu:1", "time": "1:00:00"},
                }
            },
        },
    )


def test_cmd_params_are_quoted_one_argument_each(cfg: Config) -> None:
    evil = "; rm -rf ~"
    task = parse_task(
        {"cluster": "testcluster", "cmd": "printf '%s\\n'", "params": [evil, "$HOME", "a b"]},
        cfg,
    )
    assert task.params == (evil, "$HOME", "a b")
    assert "'; rm -rf ~'" in task.script
    # run the script body for real: each param comes out as one literal line
    out = subprocess.run(
        ["bash", "-c", task.script], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert out.splitlines() == [evil, "$HOME", "a b"]


def test_environment_goes_into_the_script_quoted(cfg: Config) -> None:
    task = parse_task(
        {
            "cluster": "testcluster",
            "cmd": ["bash", "-c", 'printf "%s" "$FOO"'],
            "slurm": {"environment": {"FOO": "x,y'; echo pwned"}},
        },
        cfg,
    )
    out = subprocess.run(
        ["bash", "-c", batch_script(task)], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert out == "x,y'; echo pwned"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"cmd": "true", "slurm": {"exclusive": True}}, "slurm.exclusive"),
        ({"cmd": "true", "slurm": {"partition": "debug; rm"}}, "slurm.partition"),
        ({"cmd": "true", "slurm": {"time": "forever"}}, "slurm.time"),
        ({"cmd": "true", "slurm": {"mem": "-1"}}, "slurm.mem"),
        ({"cmd": "true", "slurm": {"cpus_per_task": 0}}, "slurm.cpus_per_task"),
        ({"cmd": "true", "slurm": {"output": "-o/etc/x"}}, "slurm.output"),
        ({"cmd": "true", "slurm": {"environment": {"1X": "a"}}}, "slurm.environment"),
        ({"cmd": "true", "slurm": {"dependency": "afterok:1;x"}}, "slurm.dependency"),
        ({"cmd": "true", "script": "echo"}, "script"),
        ({"params": ["a"]}, "cmd"),
        ({}, "script"),
        ({"cmd": "true", "name": "nope"}, "name"),
        ({"cmd": "true", "cluster": "nope"}, "cluster"),
        ({"cmd": "true", "uuid": "../x"}, "uuid"),
        ({"cmd": "true", "username": "bob"}, "username"),
        ({"cmd": "true", "notification": {"methods": ["pigeon"]}}, "notification.methods"),
        ({"cmd": "true", "cwd": "/tmp\nx"}, "cwd"),
        ({"cmd": "true", "dirs": ["/ok", 3]}, "dirs[1]"),
    ],
)
def test_bad_fields_are_named(cfg: Config, body: dict, param: str) -> None:
    body.setdefault("cluster", "testcluster")
    with pytest.raises(BadRequest) as info:
        parse_task(body, cfg)
    assert info.value.param == param


def test_option_outside_allow_list_message_names_it(cfg: Config) -> None:
    with pytest.raises(BadRequest) as info:
        parse_task({"cluster": "testcluster", "cmd": "true", "slurm": {"uid": 0}}, cfg)
    assert "'uid' is not an allowed Slurm option" in info.value.message


def test_template_defaults_and_sbatch_args(cfg: Config) -> None:
    task = parse_task(
        {
            "cluster": "testcluster",
            "name": "gpu",
            "cmd": "python train.py",
            "params": ["--lr", "0.1"],
            "slurm": {"time": "10", "job-name": "train", "partition": "gpu"},
            "cwd": "/tmp",
            "uuid": "abc-1",
        },
        cfg,
    )
    assert task.uuid == "abc-1"
    assert task.script.splitlines() == [
        "#!/bin/bash",
        "module load cuda",
        "python train.py --lr 0.1",
    ]
    assert sbatch_args(task) == [
        "--parsable",
        "--ignore-pbs",
        "--job-name=train",
        "--partition=gpu",
        "--time=10",
        "--gres=gpu:1",
        "--chdir=/tmp",
    ]


def test_user_script_keeps_its_sbatch_header(cfg: Config) -> None:
    task = parse_task(
        {"cluster": "testcluster", "name": "gpu", "script": "#!/bin/sh\n#SBATCH -c 2\necho hi\n"},
        cfg,
    )
    assert task.script == "#!/bin/sh\n#SBATCH -c 2\nmodule load cuda\necho hi\n"


def test_rest_body_per_version(cfg: Config) -> None:
    task = parse_task(
        {
            "cluster": "other",
            "cmd": "true",
            "slurm": {"time": "1:30:00", "mem": "2G", "environment": {"A": "1"}, "nodes": "1-2"},
        },
        cfg,
    )
    old = rest_body(task, version="v0.0.38", cwd="/tmp", base_env={"PATH": "/bin"})
    assert old["job"]["environment"] == {"PATH": "/bin", "A": "1"}
    assert old["job"]["time_limit"] == 90
    assert old["job"]["memory_per_node"] == 2048
    assert old["job"]["nodes"] == [1, 2]
    assert old["script"] == task.script
    new = rest_body(task, version="v0.0.40", cwd="/tmp", base_env={"PATH": "/bin"})
    assert new["job"]["environment"] == ["PATH=/bin", "A=1"]
    assert new["job"]["time_limit"] == {"set": True, "infinite": False, "number": 90}
    assert new["job"]["script"] == task.script


@pytest.mark.parametrize(
    ("value", "minutes"),
    [("5", 5), ("1:30", 2), ("1:00:00", 60), ("2-0", 2880), ("1-1:1", 1501), ("0:30", 1)],
)
def test_time_minutes(value: str, minutes: int) -> None:
    assert time_minutes(value) == minutes


def test_jwt_is_hs256_with_sun() -> None:
    import base64
    import hashlib
    import hmac
    import json

    token = mint_jwt(b"k" * 32, "alice", 300, now=1000)
    head, claims, sig = token.split(".")
    padded = claims + "=" * (-len(claims) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {
        "iat": 1000,
        "exp": 1300,
        "sun": "alice",
    }
    expected = hmac.new(b"k" * 32, f"{head}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == sig


def test_parsers() -> None:
    assert _parse_job_id("42\n") == 42
    assert _parse_job_id("43;testcluster\n") == 43
    info = parse_squeue_line(7, "7|CANCELLED by 1001|alice\n")
    assert info is not None and info.state == "CANCELLED" and info.username == "alice"
    assert parse_squeue_line(7, "") is None
    assert (
        expand_output_path("out-%j-%x-%u-%%.txt", job_id=9, job_name="n", username="u", cwd="/w")
        == "/w/out-9-n-u-%.txt"
    )


# --------------------------------------------------------------------------- state machine


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (PENDING, Event("sent"), SUBMITTED),
        (PENDING, Event("unreachable"), PENDING),
        (PENDING, Event("cancel"), "CANCELLED"),
        (SUBMITTED, Event("slurm", "PENDING"), SUBMITTED),
        (SUBMITTED, Event("slurm", "RUNNING"), "RUNNING"),
        ("RUNNING", Event("slurm", "SUSPENDED"), "SUSPENDED"),
        ("SUSPENDED", Event("slurm", "RUNNING"), "RUNNING"),
        ("RUNNING", Event("cancel"), CANCELLING),
        (CANCELLING, Event("slurm", "RUNNING"), CANCELLING),
        (CANCELLING, Event("slurm", "CANCELLED by 1001"), "CANCELLED"),
        (CANCELLING, Event("slurm", "COMPLETED"), "COMPLETED"),
        ("RUNNING", Event("slurm", "TIMEOUT"), "TIMEOUT"),
        ("RUNNING", Event("slurm", "OUT_OF_MEMORY"), "OUT_OF_MEMORY"),
        ("RUNNING", Event("slurm", "PREEMPTED"), "PREEMPTED"),
        ("RUNNING", Event("slurm", "NODE_FAIL"), "NODE_FAIL"),
        (SUBMITTED, Event("slurm", "BOOT_FAIL"), "BOOT_FAIL"),
        (SUBMITTED, Event("slurm", "DEADLINE"), "DEADLINE"),
        ("COMPLETED", Event("slurm", "RUNNING"), "COMPLETED"),
        ("FAILED", Event("sent"), "FAILED"),
    ],
)
def test_next_state(current: str, event: Event, expected: str) -> None:
    assert next_state(current, event) == expected


@pytest.mark.parametrize("final", ["COMPLETED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY"])
def test_cancel_of_a_final_state_is_refused(final: str) -> None:
    with pytest.raises(InvalidTransition):
        next_state(final, Event("cancel"))
