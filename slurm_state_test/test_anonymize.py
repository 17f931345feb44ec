"""Anonymization of parsed jobs and of raw reports (the shareable-fixture command)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from clockwork_core.config import AnonymizeConfig
from slurm_state.anonymize import Anonymizer, anonymize_json, anonymize_psv, make_anonymizer
from slurm_state.parsers import parse_jobs

FIXTURES = Path(__file__).parent / "fixtures" / "22.05"
KEY = b"test-key-0123456789"


def _jobs(name: str, fmt: str = "auto") -> dict[int, object]:
    with (FIXTURES / name).open("rb") as fh:
        return {j.job_id: j for j in parse_jobs(fh, fmt=fmt, cluster_name="c")}


def test_keep_policy_changes_nothing_and_needs_no_key() -> None:
    anonymize = make_anonymizer(AnonymizeConfig(), None)
    job = _jobs("sacct-wide.psv")[3]
    assert anonymize(job) is job


def test_pseudonyms_are_stable_keyed_and_not_the_name() -> None:
    policy = AnonymizeConfig(usernames="pseudonymize")
    first = make_anonymizer(policy, KEY)
    again = make_anonymizer(policy, KEY)
    other_key = make_anonymizer(policy, b"another key")
    jobs = _jobs("sacct-wide.psv")

    alice = first(jobs[1]).username
    assert alice is not None and alice.startswith("u_") and len(alice) == 14
    assert "alice" not in alice
    assert again(jobs[3]).username == alice  # the same user, the same pseudonym
    assert first(jobs[2]).username != alice  # bob
    assert other_key(jobs[1]).username != alice
    assert jobs[1].username == "alice"  # the input is not modified


def test_drop_and_hash() -> None:
    job = _jobs("handmade-sacct-special.usv")[3]
    dropped = make_anonymizer(
        AnonymizeConfig(job_names="drop", paths="drop", comments="drop"), KEY
    )(job)
    assert (dropped.name, dropped.working_directory, dropped.comment) == (None, None, None)
    hashed = make_anonymizer(AnonymizeConfig(job_names="hash", paths="hash", comments="hash"), KEY)(
        job
    )
    assert hashed.name.startswith("h_") and hashed.name != job.name
    assert hashed.working_directory.startswith("h_") and hashed.comment.startswith("h_")
    assert hashed.username == job.username  # usernames kept


def test_a_policy_that_hashes_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        make_anonymizer(AnonymizeConfig(usernames="pseudonymize"), None)


def test_step_names_follow_the_job_name_policy() -> None:
    job = _jobs("sacct-wide.psv")[6]
    out = make_anonymizer(AnonymizeConfig(job_names="drop"), KEY)(job)
    assert {s["step_id"]: s["name"] for s in out.steps} == {
        "batch": "batch",
        "0": None,
        "1": None,
        "2": None,
    }


POLICY = AnonymizeConfig(usernames="pseudonymize", job_names="hash", paths="hash", comments="hash")
SECRETS = ("alice", "bob", "timeout-job", "/tmp", "café", "<script>", "sleep 600")


@pytest.mark.parametrize("name", ["sacct-wide.psv", "sacct-all.psv", "handmade-sacct-special.usv"])
def test_psv_report_rewritten_still_parses_and_leaks_nothing(name: str) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    out = "\n".join(anonymize_psv(text.splitlines(), Anonymizer(POLICY, KEY))) + "\n"

    for secret in SECRETS:
        assert secret not in out
    before = _jobs(name)
    after = {j.job_id: j for j in parse_jobs(io.StringIO(out), fmt="psv", cluster_name="c")}
    assert set(after) == set(before)
    assert after[4].exit_code == 3 and after[2].cancelled_by not in (None, 1002)
    assert after[1].username == make_anonymizer(POLICY, KEY)(before[1]).username


@pytest.mark.parametrize("name", ["sacct.json", "squeue-after.json", "handmade-sacct-special.json"])
def test_json_report_rewritten_still_parses_and_leaks_nothing(name: str) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    out = "".join(anonymize_json(iter([text]), Anonymizer(POLICY, KEY)))

    for secret in SECRETS:
        assert secret not in out
    document = json.loads(out)
    assert document["meta"] == json.loads(text)["meta"]
    before = _jobs(name)
    after = {j.job_id: j for j in parse_jobs(io.StringIO(out), fmt="auto", cluster_name="c")}
    assert set(after) == set(before)
    assert after[1].username == make_anonymizer(POLICY, KEY)(before[1]).username
