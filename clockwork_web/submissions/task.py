"""A submission's task: validated once, then turned into sbatch arguments or a REST body.

Plain functions on plain data (no Flask, no database): :func:`parse_task` turns
the JSON a client sent into a typed :class:`Task` or raises
:class:`~clockwork_web.errors.BadRequest` naming the offending field;
:func:`sbatch_args`, :func:`batch_script` and :func:`rest_body` build what the
backends send.

Safety rules, enforced here so no backend can forget them:

- Slurm options come from an allow-list (:data:`SLURM_OPTIONS`), each checked
  by a regex or a type; anything else is a 400 naming it.
- ``cmd`` + ``params`` never reach a shell unquoted: every argument is
  :func:`shlex.quote`-d into the batch script, so ``"; rm -rf ~"`` arrives in
  the job as ONE literal argument.
- The identity (the Slurm username) is not part of a task at all: the service
  takes it from the logged-in user's record.
"""

from __future__ import annotations

import re
import shlex
import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clockwork_core.config import Config, NotificationsConfig
from clockwork_web.errors import BadRequest
from clockwork_web.notify.urls import UnsafeURLError, check_user_slack_url, check_user_webhook

GENERIC_TEMPLATE = "generic"
NOTIFICATION_METHODS: tuple[str, ...] = ("email", "slack", "rabbitmq", "webhook")
MAX_SCRIPT_BYTES = 256 * 1024
MAX_PARAMS = 256
MAX_ARG_LENGTH = 4096
MAX_PATH_LENGTH = 4096
MAX_DIRS = 16
MAX_ENV = 128
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIME = re.compile(
    r"^(?:\d{1,5}|\d{1,5}:\d{1,2}|\d{1,5}:\d{1,2}:\d{1,2}|\d{1,4}-\d{1,2}(?::\d{1,2}){0,2})$"
)


def _regex(pattern: str) -> Callable[[Any], str]:
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a string")
        text = str(value)
        if not compiled.fullmatch(text):
            raise ValueError(f"{text[:80]!r} is not a valid value")
        return text

    return check


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a positive integer")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ValueError("must be a positive integer")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"must be a non-empty path of at most {MAX_PATH_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    return value


def _time(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and (_TIME.fullmatch(value) or value.upper() in ("UNLIMITED",)):
        return value
    raise ValueError("must be minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")


def _environment(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("must be an object of NAME: value strings")
    if len(value) > MAX_ENV:
        raise ValueError(f"at most {MAX_ENV} variables")
    env: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise ValueError(f"{str(key)[:40]!r} is not a valid variable name")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise ValueError(f"{key}: the value must be a string")
        text = str(val)
        if "\x00" in text or len(text) > MAX_ARG_LENGTH:
            raise ValueError(f"{key}: the value must be a string without NUL bytes")
        env[key] = text
    return env


#: The Slurm options a task may set: name -> validator returning the clean value.
SLURM_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "job_name": _regex(r"[A-Za-z0-9_.,:@+=][A-Za-z0-9_.,:@+= -]{0,127}"),
    "partition": _regex(rf"{_NAME}(?:,{_NAME}){{0,15}}"),
    "time": _time,
    "mem": _regex(r"[1-9]\d{0,8}[KMGT]?"),
    "cpus_per_task": _positive_int,
    "nodes": _regex(r"[1-9]\d{0,5}(?:-[1-9]\d{0,5})?"),
    "ntasks_per_node": _positive_int,
    "gres": _regex(
        r"[A-Za-z0-9_]+(?::[A-Za-z0-9_.-]+){0,2}(?:,[A-Za-z0-9_]+(?::[A-Za-z0-9_.-]+){0,2}){0,7}"
    ),
    "gpus": _regex(r"(?:[A-Za-z0-9_.-]{1,32}:)?[1-9]\d{0,3}"),
    "account": _regex(_NAME),
    "qos": _regex(_NAME),
    "array": _regex(
        r"\d{1,7}(?:-\d{1,7}(?::\d{1,7})?)?(?:,\d{1,7}(?:-\d{1,7}(?::\d{1,7})?)?){0,63}(?:%\d{1,5})?"
    ),
    "dependency": _regex(
        r"singleton|(?:after|afterany|afterok|afternotok|aftercorr|afterburstbuffer)(?::\d{1,10}(?:\+\d{1,6})?){1,32}(?:[,?](?:after|afterany|afterok|afternotok|aftercorr)(?::\d{1,10}(?:\+\d{1,6})?){1,32}){0,15}"
    ),
    "output": _path,
    "error": _path,
    "environment": _environment,
}

#: sbatch's long option for each allowed option (environment goes in the script).
SBATCH_FLAGS: dict[str, str] = {
    "job_name": "--job-name",
    "partition": "--partition",
    "time": "--time",
    "mem": "--mem",
    "cpus_per_task": "--cpus-per-task",
    "nodes": "--nodes",
    "ntasks_per_node": "--ntasks-per-node",
    "gres": "--gres",
    "gpus": "--gpus",
    "account": "--account",
    "qos": "--qos",
    "array": "--array",
    "dependency": "--dependency",
    "output": "--output",
    "error": "--error",
}


#: sbatch's short options for the allowed ones (``#SBATCH -p debug``).
SBATCH_SHORT_FLAGS: dict[str, str] = {
    "J": "job_name",
    "p": "partition",
    "t": "time",
    "c": "cpus_per_task",
    "N": "nodes",
    "G": "gpus",
    "A": "account",
    "q": "qos",
    "a": "array",
    "d": "dependency",
    "o": "output",
    "e": "error",
}
_LONG_FLAGS: dict[str, str] = {
    **{flag[2:]: name for name, flag in SBATCH_FLAGS.items()},
    "gpus-per-node": "gpus",
}
_DIRECTIVE = "#SBATCH"


def _directive_options(words: list[str]) -> list[tuple[str, str | None]]:
    """``[(option as written, value or None)]`` of one directive's words.

    Grammar (sbatch's own): ``--name=value``, ``--name value``, ``-Xvalue`` or
    ``-X value``; every option here takes a value.
    """
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            given: str | None = value
            if not eq:
                given = words[i + 1] if i + 1 < len(words) else None
                i += 1
            out.append((f"--{name}", given))
        elif word.startswith("-") and len(word) >= 2:
            given = word[2:] or (words[i + 1] if i + 1 < len(words) else None)
            if not word[2:]:
                i += 1
            out.append((word[:2], given))
        else:
            out.append((word, None))
        i += 1
    return out


def check_directives(script: str) -> None:
    """Refuse ``#SBATCH`` lines that set an option outside :data:`SLURM_OPTIONS`.

    sbatch reads directives from the lines after ``#!`` up to the first line
    that is neither blank nor a comment; they carry the same weight as
    command-line options, so they pass through the same allow-list and value
    checks (``#SBATCH --nice=-10000`` is refused like ``slurm.nice``). ``#PBS``
    and ``#BSUB`` lines are ignored by sbatch (``--ignore-pbs``, always given).
    """
    lines = script.splitlines()
    for number, line in enumerate(lines[1:], start=2):
        text = line.strip()
        if text and not text.startswith("#"):
            return
        if not text.startswith(_DIRECTIVE):
            continue
        rest = text[len(_DIRECTIVE) :]
        where = f"line {number}"
        if rest and not rest[0].isspace():
            raise BadRequest(f"{where}: {text[:60]!r} is not a valid #SBATCH line", param="script")
        try:
            words = shlex.split(rest)
        except ValueError as exc:
            raise BadRequest(
                f"{where}: cannot split {text[:60]!r}: {exc}", param="script"
            ) from None
        for option, value in _directive_options(words):
            if option.startswith("--"):
                name = _LONG_FLAGS.get(option[2:].lower())
            elif option.startswith("-"):
                name = SBATCH_SHORT_FLAGS.get(option[1:])
            else:
                name = None
            if name is None:
                allowed = ", ".join(f"--{flag}" for flag in _LONG_FLAGS)
                raise BadRequest(
                    f"{where}: {option[:40]!r} is not an allowed Slurm option (allowed: {allowed})",
                    param="script",
                )
            if value is None:
                raise BadRequest(f"{where}: {option} needs a value", param="script")
            try:
                SLURM_OPTIONS[name](value)
            except ValueError as exc:
                raise BadRequest(f"{where}: {option}: {exc}", param="script") from None


@dataclass(frozen=True)
class Notification:
    """Which channels to notify, with the user's parameters per channel."""

    methods: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    #: Slurm states (or the word ``final``) that trigger a notification.
    on: tuple[str, ...] = ("final",)

    def to_dict(self) -> dict[str, Any]:
        return {"methods": list(self.methods), "params": self.params, "on": list(self.on)}


@dataclass(frozen=True)
class Task:
    """A validated task. ``script`` is the whole batch script the job runs."""

    uuid: str
    cluster: str
    template: str
    script: str
    cmd: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    slurm: dict[str, Any] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    cwd: str | None = None
    notification: Notification | None = None

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.slurm.get("environment") or {})

    def to_dict(self) -> dict[str, Any]:
        """The stored form (in the submission document)."""
        return {
            "uuid": self.uuid,
            "cluster": self.cluster,
            "name": self.template,
            "script": self.script,
            "cmd": list(self.cmd),
            "params": list(self.params),
            "slurm": self.slurm,
            "dirs": list(self.dirs),
            "cwd": self.cwd,
            "notification": self.notification.to_dict() if self.notification else None,
        }


# --------------------------------------------------------------------------- parsing


def parse_slurm_options(raw: Any, prefix: str = "slurm") -> dict[str, Any]:
    """Check every option against the allow-list; ``-`` and ``_`` are the same."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadRequest("must be an object of Slurm options", param=prefix)
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).strip().lstrip("-").replace("-", "_").lower()
        if name == "gpus_per_node":
            name = "gpus"
        check = SLURM_OPTIONS.get(name)
        if check is None:
            raise BadRequest(
                f"{str(key)[:60]!r} is not an allowed Slurm option "
                f"(allowed: {', '.join(SLURM_OPTIONS)})",
                param=f"{prefix}.{str(key)[:60]}",
            )
        try:
            clean[name] = check(value)
        except ValueError as exc:
            raise BadRequest(str(exc), param=f"{prefix}.{name}") from None
    return clean


def _check_user_urls(
    methods: list[str], params: Mapping[str, Any], conf: NotificationsConfig
) -> None:
    """Refuse, at submit time, a webhook or Slack URL the notifier would refuse (SSRF guard)."""
    checks = {
        "webhook": ("url", check_user_webhook),
        "slack": ("webhook_url", check_user_slack_url),
    }
    for method, (key, check) in checks.items():
        section = params.get(method)
        url = section.get(key) if isinstance(section, Mapping) else None
        if method not in methods or (url is None and method == "slack"):
            continue  # Slack without a URL of the user's: the operator's own channel
        try:
            check(url, conf)
        except UnsafeURLError as exc:
            raise BadRequest(str(exc), param=f"notification.params.{method}.{key}") from None


def parse_notification(
    raw: Any, notifications: NotificationsConfig | None = None
) -> Notification | None:
    """``{"methods": [...], "params": {...}, "on": [...]}``; a list is just the methods.

    With ``notifications`` (the server's NotificationsConfig), user-supplied
    URLs are checked as the notifier will check them.
    """
    if raw is None or raw == {} or raw == []:
        return None
    if isinstance(raw, list):
        raw = {"methods": raw}
    if not isinstance(raw, Mapping):
        raise BadRequest("must be an object with methods and params", param="notification")
    unknown = set(raw) - {"methods", "params", "on"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}", param="notification")
    methods = raw.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise BadRequest("must be a list of method names", param="notification.methods")
    for method in methods:
        if method not in NOTIFICATION_METHODS:
            raise BadRequest(
                f"{method[:40]!r} is not one of {', '.join(NOTIFICATION_METHODS)}",
                param="notification.methods",
            )
    params = raw.get("params") or {}
    if not isinstance(params, Mapping) or len(repr(params)) > 4096:
        raise BadRequest("must be an object (at most 4 KiB)", param="notification.params")
    on = raw.get("on") or ["final"]
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not all(isinstance(s, str) and s for s in on):
        raise BadRequest("must be a list of job states or 'final'", param="notification.on")
    if notifications is not None:
        _check_user_urls(methods, params, notifications)
    return Notification(
        methods=tuple(dict.fromkeys(methods)),
        params=dict(params),
        on=tuple(s.upper() if s != "final" else s for s in on),
    )


def _string_list(raw: Any, param: str, limit: int, check: Callable[[Any], str]) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, Mapping):  # slurm-proxy style {"name": path}
        raw = list(raw.values())
    if not isinstance(raw, list) or len(raw) > limit:
        raise BadRequest(f"must be a list of at most {limit} strings", param=param)
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(check(item))
        except ValueError as exc:
            raise BadRequest(str(exc), param=f"{param}[{i}]") from None
    return out


def _argument(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a string")
    text = str(value)
    if "\x00" in text or len(text) > MAX_ARG_LENGTH:
        raise ValueError(f"must be a string of at most {MAX_ARG_LENGTH} characters, no NUL")
    return text


def _choose_cluster(raw: Any, config: Config) -> str:
    submit_clusters = [n for n, c in config.clusters.items() if c.submit.backend != "none"]
    if raw is None:
        if len(submit_clusters) == 1:
            return submit_clusters[0]
        raise BadRequest(
            f"required: one of {', '.join(submit_clusters) or '(none configured)'}",
            param="cluster",
        )
    if not isinstance(raw, str) or raw not in config.clusters:
        raise BadRequest(f"unknown cluster {str(raw)[:60]!r}", param="cluster")
    if config.clusters[raw].submit.backend == "none":
        raise BadRequest(f"cluster {raw!r} does not accept submissions", param="cluster")
    return raw


def parse_task(data: Any, config: Config, *, allow: frozenset[str] = frozenset()) -> Task:
    """Validate a task dict (the body of ``POST /api/v1/submissions``).

    Fields: ``cluster``, ``name`` (a template of the config or ``generic``),
    ``script`` XOR ``cmd`` (+ ``params``), ``slurm``, ``dirs``, ``cwd``,
    ``notification``, ``uuid`` (made up when absent). ``allow`` names extra
    top-level fields the caller handles itself (the proxy's ``username``).
    Raises BadRequest naming the first bad field.
    """
    if not isinstance(data, Mapping):
        raise BadRequest("the body must be a JSON object (a task)")
    known = {"cluster", "name", "script", "cmd", "params", "slurm", "dirs", "cwd"}
    known |= {"notification", "uuid"} | set(allow)
    unknown = sorted(str(k)[:40] for k in data if k not in known)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}", param=unknown[0])

    cluster = _choose_cluster(data.get("cluster"), config)

    raw_uuid = data.get("uuid")
    if raw_uuid is None:
        task_uuid = str(uuid_module.uuid4())
    elif isinstance(raw_uuid, str) and _UUID.match(raw_uuid):
        task_uuid = raw_uuid
    else:
        raise BadRequest("must be a string of letters, digits, _ . : - (max 128)", param="uuid")

    template_name = data.get("name") or GENERIC_TEMPLATE
    if not isinstance(template_name, str) or (
        template_name != GENERIC_TEMPLATE and template_name not in config.templates
    ):
        choices = [GENERIC_TEMPLATE, *config.templates]
        raise BadRequest(f"unknown template; use one of {', '.join(choices)}", param="name")
    template = config.templates.get(template_name)

    slurm = parse_slurm_options(
        template.slurm if template else {}, prefix=f"templates.{template_name}"
    )
    slurm.update(parse_slurm_options(data.get("slurm")))

    script = data.get("script")
    cmd_raw = data.get("cmd")
    params_raw = data.get("params")
    if script is not None and (cmd_raw is not None or params_raw is not None):
        raise BadRequest("give either a script or cmd (+ params), not both", param="script")
    cmd: list[str] = []
    params: list[str] = []
    if script is not None:
        if not isinstance(script, str) or not script.strip():
            raise BadRequest("must be a non-empty string", param="script")
        if len(script.encode("utf-8")) > MAX_SCRIPT_BYTES or "\x00" in script:
            raise BadRequest(f"at most {MAX_SCRIPT_BYTES} bytes, no NUL", param="script")
    elif cmd_raw is not None:
        if isinstance(cmd_raw, str):
            try:
                cmd = shlex.split(cmd_raw)
            except ValueError as exc:
                raise BadRequest(f"cannot split the command: {exc}", param="cmd") from None
        else:
            cmd = _string_list(cmd_raw, "cmd", MAX_PARAMS, _argument)
        if not cmd:
            raise BadRequest("must name a program", param="cmd")
        params = _string_list(params_raw, "params", MAX_PARAMS, _argument)
    elif params_raw is not None:
        raise BadRequest("params need a cmd", param="cmd")
    elif not (template and template.script.strip()):
        raise BadRequest("give a script or a cmd", param="script")

    dirs = _string_list(data.get("dirs"), "dirs", MAX_DIRS, _path)
    cwd = data.get("cwd")
    if cwd is not None:
        try:
            cwd = _path(cwd)
        except ValueError as exc:
            raise BadRequest(str(exc), param="cwd") from None

    notification = parse_notification(data.get("notification"), config.notifications)
    body = script if script is not None else (shlex.join([*cmd, *params]) if cmd else "")
    composed = compose_script(template.script if template else "", body)
    check_directives(composed)
    return Task(
        uuid=task_uuid,
        cluster=cluster,
        template=template_name,
        script=composed,
        cmd=tuple(cmd),
        params=tuple(params),
        slurm=slurm,
        dirs=tuple(dirs),
        cwd=cwd,
        notification=notification,
    )


def compose_script(prelude: str, body: str) -> str:
    """``#!`` line, the template's prelude, then the user's script or command line.

    The user's own ``#!`` line (and its ``#SBATCH`` lines) are kept at the top,
    where Slurm reads them.
    """
    lines = body.splitlines()
    shebang = "#!/bin/bash"
    header: list[str] = []
    if lines and lines[0].startswith("#!"):
        shebang = lines.pop(0)
    while lines and (lines[0].startswith("#SBATCH") or not lines[0].strip()):
        header.append(lines.pop(0))
    parts = [shebang, *header]
    if prelude.strip():
        parts.append(prelude.rstrip("\n"))
    parts.extend(lines)
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- building


def sbatch_args(task: Task, *, cwd: str | None = None) -> list[str]:
    """The sbatch options of the task (the script goes on stdin), one list item each."""
    args = ["--parsable", "--ignore-pbs"]
    for name, flag in SBATCH_FLAGS.items():
        if name in task.slurm:
            args.append(f"{flag}={task.slurm[name]}")
    workdir = cwd or task.cwd
    if workdir:
        args.append(f"--chdir={workdir}")
    return args


def batch_script(task: Task) -> str:
    """The script for sbatch: the task's script with its environment exported first.

    ``export NAME=<quoted value>`` lines go right after the ``#SBATCH`` header,
    so a value with commas or quotes cannot break ``--export``.
    """
    env = task.environment
    if not env:
        return task.script
    lines = task.script.splitlines()
    at = 1
    while at < len(lines) and (lines[at].startswith("#SBATCH") or not lines[at].strip()):
        at += 1
    exports = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join([*lines[:at], *exports, *lines[at:]]) + "\n"


def time_minutes(value: str) -> int | None:
    """Slurm's time formats to minutes (rounded up); None for UNLIMITED."""
    if value.upper() == "UNLIMITED":
        return None
    days = 0
    if "-" in value:
        d, value = value.split("-", 1)
        days = int(d)
        parts = [int(p) for p in value.split(":")]
        while len(parts) < 3:
            parts.append(0)
        hours, minutes, seconds = parts
    else:
        parts = [int(p) for p in value.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts
    total = days * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    return max(total, 1)


def _mem_mb(value: str) -> int:
    unit = value[-1] if value[-1] in "KMGT" else "M"
    number = int(value.rstrip("KMGT"))
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]
    return max(int(number * factor), 1)


def _api_minor(version: str) -> int:
    match = re.fullmatch(r"v0\.0\.(\d+)", version)
    if not match:
        raise ValueError(f"unsupported slurmrestd API version {version!r}")
    return int(match.group(1))


def rest_body(task: Task, *, version: str, cwd: str, base_env: Mapping[str, str]) -> dict[str, Any]:
    """The ``POST /slurm/<version>/job/submit`` body.

    v0.0.38 and older take ``environment`` as an object and plain numbers;
    v0.0.39+ take it as a list of ``NAME=value`` and numbers as
    ``{"set", "infinite", "number"}``.
    """
    minor = _api_minor(version)
    new_style = minor >= 39

    def number(n: int | None) -> Any:
        if not new_style:
            return n
        if n is None:
            return {"set": True, "infinite": True, "number": 0}
        return {"set": True, "infinite": False, "number": n}

    s = task.slurm
    job: dict[str, Any] = {"current_working_directory": cwd}
    env = {**base_env, **task.environment}
    job["environment"] = [f"{k}={v}" for k, v in env.items()] if new_style else env
    if "job_name" in s:
        job["name"] = s["job_name"]
    for key in ("partition", "account", "qos", "array", "dependency"):
        if key in s:
            job[key] = s[key]
    if "time" in s:
        job["time_limit"] = number(time_minutes(s["time"]))
    if "mem" in s:
        job["memory_per_node"] = number(_mem_mb(s["mem"]))
    if "cpus_per_task" in s:
        job["cpus_per_task"] = s["cpus_per_task"]
    if "ntasks_per_node" in s:
        job["tasks_per_node"] = s["ntasks_per_node"]
    if "nodes" in s:
        low, _, high = str(s["nodes"]).partition("-")
        job["nodes"] = [int(low), int(high or low)] if not new_style else str(s["nodes"])
    if "gres" in s:
        job["gres" if not new_style else "tres_per_node"] = (
            s["gres"] if not new_style else "gres/" + s["gres"].replace(":", "/", 1)
        )
    if "gpus" in s:
        job["gpus" if not new_style else "tres_per_job"] = (
            s["gpus"] if not new_style else f"gres/gpu:{s['gpus']}"
        )
    if "output" in s:
        job["standard_output"] = s["output"]
    if "error" in s:
        job["standard_error"] = s["error"]
    if new_style:
        job["script"] = task.script
        return {"job": job}
    return {"job": job, "script": task.script}
