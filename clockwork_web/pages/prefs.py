"""A user's display preferences (``users.settings``): plain data, validated here.

Stored keys: ``theme`` (system|light|dark), ``language`` ("" = the browser's),
``timezone`` (IANA name), ``date_format`` (iso|locale|short), ``per_page``,
``job_columns`` (keys of :data:`JOB_COLUMNS`). Other components keep their own
keys in the same ``settings`` document, so writes ``$set`` single keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from clockwork_web.errors import BadRequest
from clockwork_web.i18n import DATE_FORMATS, LANGUAGES, valid_timezone

THEMES: tuple[str, ...] = ("system", "light", "dark")
PER_PAGE_CHOICES: tuple[int, ...] = (10, 25, 50, 100, 200, 500)


@dataclass(frozen=True)
class Column:
    """A column of the job table: its label and the sort key its header links to."""

    label: Any
    sort: str | None = None
    numeric: bool = False


#: Every column the job search can show, in display order.
JOB_COLUMNS: dict[str, Column] = {
    "job_id": Column(_l("Job ID"), "job_id", numeric=True),
    "cluster": Column(_l("Cluster"), "cluster"),
    "name": Column(_l("Name"), "name"),
    "user": Column(_l("User"), "user"),
    "username": Column(_l("Slurm user"), "username"),
    "state": Column(_l("State"), "state"),
    "partition": Column(_l("Partition")),
    "account": Column(_l("Account")),
    "submit_time": Column(_l("Submitted"), "submit_time"),
    "start_time": Column(_l("Started"), "start_time"),
    "end_time": Column(_l("Ended"), "end_time"),
    "elapsed": Column(_l("Elapsed")),
    "cpus": Column(_l("CPUs"), numeric=True),
    "gpus": Column(_l("GPUs"), numeric=True),
    "mem": Column(_l("Memory"), numeric=True),
    "nodes": Column(_l("Nodes")),
    "exit_code": Column(_l("Exit code"), numeric=True),
}
DEFAULT_JOB_COLUMNS: tuple[str, ...] = (
    "job_id",
    "cluster",
    "name",
    "user",
    "state",
    "submit_time",
    "elapsed",
    "gpus",
    "nodes",
)


@dataclass(frozen=True)
class Prefs:
    """The effective preferences of a user (defaults filled in)."""

    theme: str = "system"
    language: str = ""
    timezone: str = "UTC"
    date_format: str = "iso"
    per_page: int = 50
    job_columns: tuple[str, ...] = DEFAULT_JOB_COLUMNS


def prefs_of(settings: Mapping[str, Any] | None, per_page_default: int = 50) -> Prefs:
    """The preferences in ``settings``, ignoring anything stale or invalid."""
    s = settings or {}
    per_page = s.get("per_page")
    columns = tuple(c for c in (s.get("job_columns") or ()) if c in JOB_COLUMNS)
    return Prefs(
        theme=s.get("theme") if s.get("theme") in THEMES else "system",
        language=s.get("language") if s.get("language") in LANGUAGES else "",
        timezone=s.get("timezone") if valid_timezone(s.get("timezone")) else "UTC",
        date_format=s.get("date_format") if s.get("date_format") in DATE_FORMATS else "iso",
        per_page=per_page if per_page in PER_PAGE_CHOICES else per_page_default,
        job_columns=columns or DEFAULT_JOB_COLUMNS,
    )


def _one(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def parse_prefs_form(form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The ``settings`` keys of the preferences form; BadRequest names a bad field."""
    theme = _one(form, "theme")
    if theme not in THEMES:
        raise BadRequest(f"choose one of {', '.join(THEMES)}", param="theme")
    language = _one(form, "language")
    if language and language not in LANGUAGES:
        raise BadRequest(f"choose one of {', '.join(LANGUAGES)}", param="language")
    timezone = _one(form, "timezone") or "UTC"
    if not valid_timezone(timezone):
        raise BadRequest(f"unknown time zone {timezone[:64]!r}", param="timezone")
    date_format = _one(form, "date_format")
    if date_format not in DATE_FORMATS:
        raise BadRequest(f"choose one of {', '.join(DATE_FORMATS)}", param="date_format")
    per_page_raw = _one(form, "per_page")
    if not per_page_raw.isdigit() or int(per_page_raw) not in PER_PAGE_CHOICES:
        raise BadRequest(f"choose one of {', '.join(map(str, PER_PAGE_CHOICES))}", param="per_page")
    columns = [c for c in form.get("job_columns", []) if c]
    unknown = [c for c in columns if c not in JOB_COLUMNS]
    if unknown:
        raise BadRequest(f"unknown column {unknown[0][:40]!r}", param="job_columns")
    if not columns:
        raise BadRequest("choose at least one column", param="job_columns")
    return {
        "theme": theme,
        "language": language,
        "timezone": timezone,
        "date_format": date_format,
        "per_page": int(per_page_raw),
        "job_columns": [c for c in JOB_COLUMNS if c in columns],
    }
