"""Anonymization of job records and of raw sacct reports, by a per-cluster policy.

Policy (``clockwork_core.config.AnonymizeConfig``): usernames ``keep`` or
``pseudonymize``; job names, paths and comments ``keep``, ``drop`` (None) or
``hash``. Pseudonyms and hashes are keyed HMAC-SHA256: stable for one key (the
same user is the same pseudonym in every scrape, so per-user pages and counts
still work), not reversible, and not guessable by hashing candidate names
without the key.

``make_anonymizer`` is applied to parsed Jobs before they are stored or
exported. ``anonymize_psv`` and ``anonymize_json`` rewrite raw sacct reports
(same format out) into fixtures that can be shared; they stream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from clockwork_core.config import AnonymizeConfig
from clockwork_core.schema import Job

from .parsers._errors import SlurmParseError
from .parsers._jsonstream import ArrayStream, BadElement, JsonStreamError
from .parsers.sacct_psv import SACCT_DELIMITER, _resplit

#: Step names that are Slurm's own, not the user's.
_SLURM_STEP_NAMES = frozenset({"batch", "extern", "interactive"})


class Anonymizer:
    """The keyed transformations of one policy (the functions behind ``make_anonymizer``)."""

    def __init__(self, policy: AnonymizeConfig, key: bytes | None) -> None:
        needs_key = policy.usernames == "pseudonymize" or "hash" in (
            policy.job_names,
            policy.paths,
            policy.comments,
        )
        if needs_key and not key:
            raise ValueError("this anonymization policy pseudonymizes or hashes: it needs a key")
        self.policy = policy
        self._key = key or b""
        self._cache: dict[tuple[str, str], str] = {}

    def _digest(self, domain: str, value: str) -> str:
        cached = self._cache.get((domain, value))
        if cached is None:
            mac = hmac.new(self._key, f"{domain}\0{value}".encode(), hashlib.sha256)
            cached = mac.hexdigest()
            if len(self._cache) < 100_000:
                self._cache[(domain, value)] = cached
        return cached

    def user(self, name: str | None) -> str | None:
        """A username (or group name) under the policy: ``u_`` + 12 hex digits."""
        if not name or self.policy.usernames == "keep":
            return name
        return "u_" + self._digest("user", name)[:12]

    def uid(self, uid: int | None) -> int | None:
        """A numeric uid/gid under the username policy (stable, in 100000..999999)."""
        if uid is None or self.policy.usernames == "keep":
            return uid
        return 100_000 + int(self._digest("uid", str(uid))[:8], 16) % 900_000

    def _text(self, mode: str, domain: str, value: str | None) -> str | None:
        if value is None or value == "" or mode == "keep":
            return value
        if mode == "drop":
            return None
        return "h_" + self._digest(domain, value)[:16]

    def job_name(self, value: str | None) -> str | None:
        return self._text(self.policy.job_names, "name", value)

    def path(self, value: str | None) -> str | None:
        return self._text(self.policy.paths, "path", value)

    def comment(self, value: str | None) -> str | None:
        return self._text(self.policy.comments, "comment", value)

    def free_text(self, value: str | None) -> str | None:
        """Text that mixes names and paths (a submit line): the stricter of the two policies."""
        modes = {self.policy.job_names, self.policy.paths}
        mode = "drop" if "drop" in modes else "hash" if "hash" in modes else "keep"
        return self._text(mode, "text", value)

    def step_name(self, value: str | None) -> str | None:
        return value if value in _SLURM_STEP_NAMES else self.job_name(value)

    def job(self, job: Job) -> Job:
        """A copy of ``job`` under the policy (the input is not modified)."""
        steps = [
            {**step, "name": self.step_name(step.get("name"))} if step.get("name") else step
            for step in job.steps
        ]
        return dataclasses.replace(
            job,
            username=self.user(job.username),
            name=self.job_name(job.name),
            working_directory=self.path(job.working_directory),
            comment=self.comment(job.comment),
            steps=steps,
        )


def make_anonymizer(policy: AnonymizeConfig, key: bytes | None) -> Callable[[Job], Job]:
    """The function that anonymizes one Job under ``policy``.

    Raises ValueError if the policy pseudonymizes or hashes and ``key`` is empty.
    With an all-``keep`` policy it returns the job unchanged (no copy).
    """
    anonymizer = Anonymizer(policy, key)
    if policy == AnonymizeConfig():
        return lambda job: job
    return anonymizer.job


# --------------------------------------------------------------------------- raw reports


def anonymize_psv(lines: Iterable[str], anonymizer: Anonymizer) -> Iterator[str]:
    """Rewrite a ``sacct --parsable2`` report (with its header), line by line.

    User/Group/UID/GID and the uid in ``CANCELLED by <uid>`` follow the username
    policy; JobName (and step names) the job-name policy; WorkDir the path
    policy; the comments the comment policy; SubmitLine the stricter of the
    name and path policies. Raises SlurmParseError without a header line.
    """
    iterator = iter(lines)
    header: list[str] | None = None
    delim = "|"
    for line_no, raw_line in enumerate(iterator, 1):
        line = raw_line.rstrip("\r\n")
        if header is None:
            if not line.strip():
                yield line
                continue
            delim = SACCT_DELIMITER if SACCT_DELIMITER in line else "|"
            header = line.split(delim)
            if "JobID" not in header:
                raise SlurmParseError(
                    "anonymizing needs the header line (sacct without --noheader)",
                    line_no=line_no,
                    text=line,
                )
            yield line
            continue
        if not line.strip():
            yield line
            continue
        parts = line.split(delim)
        if len(parts) > len(header):
            parts = _resplit(parts, header, delim) or parts
        if len(parts) != len(header):
            _refuse(line_no, line)
        is_step = "." in parts[header.index("JobID")]
        out = []
        for column, value in zip(header, parts, strict=True):
            out.append(_psv_value(anonymizer, column, value, is_step))
        yield delim.join(out)


def _refuse(line_no: int, line: str) -> None:
    raise SlurmParseError(
        "wrong field count: refusing to copy a line that may hold unanonymized text",
        line_no=line_no,
        text=line,
    )


def _psv_value(anonymizer: Anonymizer, column: str, value: str, is_step: bool) -> str:
    if not value:
        return value
    if column in ("User", "Group"):
        return anonymizer.user(value) or ""
    if column in ("UID", "GID"):
        return str(anonymizer.uid(int(value))) if value.isdigit() else value
    if column == "State" and " by " in value:
        state, _, uid = value.partition(" by ")
        return f"{state} by {anonymizer.uid(int(uid))}" if uid.isdigit() else value
    if column == "JobName":
        new = anonymizer.step_name(value) if is_step else anonymizer.job_name(value)
        return new or ""
    if column == "WorkDir":
        return anonymizer.path(value) or ""
    if column in ("Comment", "AdminComment", "SystemComment"):
        return anonymizer.comment(value) or ""
    if column == "SubmitLine":
        return anonymizer.free_text(value) or ""
    return value


#: JSON keys (sacct --json and squeue --json jobs) and how to treat them.
_JSON_USER_KEYS = frozenset(
    {"user", "user_name", "group", "group_name", "kill_request_user", "reason_set_by_user"}
)
_JSON_UID_KEYS = frozenset({"user_id", "group_id"})
_JSON_PATH_KEYS = frozenset(
    {
        "working_directory",
        "current_working_directory",
        "standard_output",
        "standard_error",
        "standard_input",
        "command",
        "stdout",
        "stderr",
        "stdin",
    }
)
_JSON_COMMENT_KEYS = frozenset({"comment", "admin_comment", "system_comment", "administrator"})
_JSON_FREE_TEXT_KEYS = frozenset({"submit_line", "script"})


def anonymize_job_json(job: dict[str, Any], anonymizer: Anonymizer) -> dict[str, Any]:
    """One ``jobs[]`` element with its names, users, paths and comments under the policy."""
    out = _walk(job, anonymizer)
    if isinstance(job.get("name"), str):
        out["name"] = anonymizer.job_name(job["name"])
    for step in out.get("steps") or []:
        ident = step.get("step") if isinstance(step, dict) else None
        if isinstance(ident, dict) and isinstance(ident.get("name"), str):
            ident["name"] = anonymizer.step_name(ident["name"])
    return out


def _walk(value: Any, anonymizer: Anonymizer) -> Any:
    if isinstance(value, list):
        return [_walk(item, anonymizer) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _JSON_USER_KEYS and isinstance(item, str):
            out[key] = anonymizer.user(item)
        elif key in _JSON_UID_KEYS and isinstance(item, int):
            out[key] = anonymizer.uid(item)
        elif key in _JSON_PATH_KEYS and isinstance(item, str):
            out[key] = anonymizer.path(item)
        elif (key in _JSON_COMMENT_KEYS and isinstance(item, str)) or (
            key in ("job", "system") and isinstance(item, str)
        ):
            out[key] = anonymizer.comment(item)
        elif key in _JSON_FREE_TEXT_KEYS and isinstance(item, str):
            out[key] = anonymizer.free_text(item)
        else:
            out[key] = _walk(item, anonymizer)
    return out


def anonymize_json(chunks: Iterator[str], anonymizer: Anonymizer) -> Iterator[str]:
    """Rewrite a ``sacct``/``squeue --json`` document, one job at a time (same shape out).

    The top-level keys before ``jobs`` are written first, the others after it.
    A job that does not decode raises SlurmParseError (a fixture must not
    silently lose or leak records).
    """
    stream = ArrayStream(chunks, "jobs")
    written: set[str] = set()
    first = True
    try:
        for index, line_no, element in stream:
            if first:
                yield "{\n"
                for key, value in stream.other.items():
                    yield f"  {json.dumps(key)}: {json.dumps(value)},\n"
                    written.add(key)
                yield '  "jobs": [\n'
            if isinstance(element, BadElement):
                raise SlurmParseError(
                    f"jobs[{index}]: {element.reason}", line_no=line_no, text=element.text
                )
            text = json.dumps(anonymize_job_json(element, anonymizer), ensure_ascii=False)
            yield ("    " if first else ",\n    ") + text
            first = False
    except JsonStreamError as exc:
        raise SlurmParseError(exc.reason, line_no=exc.line_no, text=exc.text) from None
    if first:  # no job at all
        yield "{\n"
        for key, value in stream.other.items():
            if key != "jobs":
                yield f"  {json.dumps(key)}: {json.dumps(value)},\n"
                written.add(key)
        yield '  "jobs": [\n'
    yield "\n  ]"
    for key, value in stream.other.items():
        if key not in written and key != "jobs":
            yield f",\n  {json.dumps(key)}: {json.dumps(value)}"
    yield "\n}\n"
