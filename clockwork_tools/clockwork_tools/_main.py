"""The ``clockwork`` command: a thin layer over :class:`clockwork_tools.Client`.

Tables by default (plain aligned columns), ``--json`` for scripts. Exit status:
0 success, 1 an error from the server or the network, 2 a usage or
configuration error; messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO, Any, Callable

from clockwork_tools._client import Client, current_job
from clockwork_tools._exceptions import ClockworkError, ConfigurationError, HTTPStatusError
from clockwork_tools._models import Submission

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

JOB_COLUMNS = ("cluster_name", "job_id", "name", "username", "job_state", "partition",
               "submit_time", "start_time", "end_time", "num_gpus")  # fmt: skip
NODE_COLUMNS = ("cluster_name", "name", "state", "partitions", "cpus", "alloc_cpus",
                "num_gpus", "alloc_gpus", "gpu_type")  # fmt: skip
SUBMISSION_COLUMNS = ("uuid", "cluster_name", "job_id", "state", "name", "created_at")


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    return text.replace("\n", " ").replace("\t", " ")


def format_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """Plain aligned columns: two spaces between them, no trailing spaces."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = []
    for row in [list(headers), *cells]:
        lines.append("  ".join(t.ljust(w) for t, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _columns(objects: Iterable[Any], columns: Sequence[str]) -> list[list[Any]]:
    return [[getattr(o, c, None) for c in columns] for o in objects]


def _headers(columns: Sequence[str]) -> list[str]:
    short = {"cluster_name": "CLUSTER", "job_state": "STATE", "username": "USER"}
    return [short.get(c, c.upper()) for c in columns]


class Output:
    """Where a command writes: a table or JSON on ``out``."""

    def __init__(self, as_json: bool, out: IO[str]) -> None:
        self.as_json = as_json
        self.out = out

    def json(self, data: Any) -> None:
        json.dump(data, self.out, indent=2, sort_keys=False, default=str)
        self.out.write("\n")

    def table(self, objects: list[Any], columns: Sequence[str]) -> None:
        if self.as_json:
            self.json([o.raw for o in objects])
        else:
            self.line(format_table(_columns(objects, columns), _headers(columns)))

    def record(self, obj: Any) -> None:
        if self.as_json:
            self.json(obj.raw)
            return
        flat = obj.raw.get("slurm", obj.raw) if isinstance(obj.raw, dict) else {}
        rows = [(k, v) for k, v in flat.items() if not isinstance(v, (dict, list)) or v]
        for key, value in (obj.raw.get("cw") or {}).items() if "slurm" in obj.raw else ():
            rows.append((f"cw.{key}", value))
        width = max((len(k) for k, _ in rows), default=0)
        for key, value in rows:
            self.line(f"{key.ljust(width)}  {_cell(value)}")

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()


# --------------------------------------------------------------------------- arguments


def _job_target(args: argparse.Namespace) -> tuple[str, int]:
    """(cluster, job id) from ``CLUSTER ID``, ``ID --cluster C``, or the Slurm job we are in."""
    words = list(args.target or [])
    cluster = args.cluster
    if len(words) == 2:
        cluster, raw_id = words
    elif len(words) == 1:
        raw_id = words[0]
    elif not words:
        ref = current_job(cluster)
        return ref.cluster, ref.job_id
    else:
        raise UsageError("give CLUSTER ID, or ID with --cluster")
    if not cluster:
        cluster = os.environ.get("SLURM_CLUSTER_NAME")
    if not cluster:
        raise UsageError(f"which cluster is job {raw_id} on? give CLUSTER ID or --cluster")
    try:
        return cluster, int(raw_id)
    except ValueError:
        raise UsageError(f"a job id is a number, not {raw_id!r}") from None


def _pairs(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected NAME=VALUE, not {item!r}")
        out[key] = value
    return out


def _add_job_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="*", metavar="[CLUSTER] ID")
    parser.add_argument("--cluster", help="the job's cluster (default: $SLURM_CLUSTER_NAME)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clockwork",
        description="Clockwork from the command line: jobs, nodes, submissions.",
        epilog="The server and token come from --url/--token, CLOCKWORK_URL/CLOCKWORK_TOKEN, "
        "or ~/.config/clockwork/config.toml.",
    )
    parser.add_argument("--url", help="the Clockwork server (default: $CLOCKWORK_URL)")
    parser.add_argument("--token", help="an API token (default: $CLOCKWORK_TOKEN)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for each answer")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("jobs", help="list jobs")
    p.add_argument("--cluster", action="append")
    p.add_argument("--user")
    p.add_argument(
        "--state", action="append", help="Slurm state or PENDING/RUNNING/COMPLETED/FAILED"
    )
    p.add_argument("--job-id", action="append", dest="job_id")
    p.add_argument("--array-job-id", dest="array_job_id")
    p.add_argument("--name", help="substring of the job name")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--submitted-after", dest="submitted_after")
    p.add_argument("--submitted-before", dest="submitted_before")
    p.add_argument("--prop", help="NAME=VALUE: jobs with this prop of yours")
    p.add_argument("--sort")
    p.add_argument("--order", choices=("asc", "desc"))
    p.add_argument("--page", type=int)
    p.add_argument("--per-page", type=int, dest="per_page")
    p.add_argument("--all", action="store_true", help="every page, not only the first")

    p = sub.add_parser("job", help="show one job")
    _add_job_target(p)

    p = sub.add_parser("nodes", help="list nodes")
    p.add_argument("--cluster", action="append")
    p.add_argument("--state", action="append")
    p.add_argument("--name", help="substring of the node name")
    p.add_argument("--all", action="store_true", help="every page, not only the first")

    p = sub.add_parser("node", help="show one node")
    p.add_argument("cluster")
    p.add_argument("name")

    sub.add_parser("gpus", help="GPU models and counts")
    sub.add_parser("clusters", help="clusters and the freshness of their data")
    sub.add_parser("me", help="who you are to Clockwork")

    p = sub.add_parser(
        "submit",
        help="submit a job: a script FILE, or -- CMD ARGS...",
        usage="clockwork submit [options] FILE | clockwork submit [options] -- CMD [ARGS...]",
    )
    p.add_argument("file", nargs="?", help="a batch script ('-' reads stdin)")
    p.add_argument("--cluster")
    p.add_argument("--template", default="generic", help="a template of the server's config")
    p.add_argument("--job-name", dest="job_name")
    p.add_argument("--partition")
    p.add_argument("--time")
    p.add_argument("--mem")
    p.add_argument("--cpus-per-task", dest="cpus_per_task", type=int)
    p.add_argument("--gpus")
    p.add_argument("--account")
    p.add_argument("--slurm", action="append", default=[], metavar="OPTION=VALUE")
    p.add_argument("--cwd")
    p.add_argument("--notify", action="append", default=[], metavar="METHOD")
    p.add_argument("--uuid", help="your own id for this submission (idempotent retries)")

    p = sub.add_parser("cancel", help="cancel a submission")
    p.add_argument("uuid")

    p = sub.add_parser("submissions", help="list your submissions")
    p.add_argument("--state", action="append")
    p.add_argument("--cluster")

    p = sub.add_parser("adopt", help="follow a job submitted elsewhere")
    _add_job_target(p)

    p = sub.add_parser("watch", help="follow a submission (UUID) or a job (ID) until it ends")
    p.add_argument("target", nargs="+", metavar="UUID | [CLUSTER] ID")
    p.add_argument("--cluster")
    p.add_argument("--interval", type=float, default=5.0, help="first poll interval (s)")
    p.add_argument("--max-interval", type=float, default=60.0, dest="max_interval")
    p.add_argument("--timeout", type=float, dest="watch_timeout", help="give up after (s)")

    p = sub.add_parser("output", help="print a submission's stdout (or --stderr, --path)")
    p.add_argument("uuid")
    p.add_argument("--stderr", action="store_true")
    p.add_argument("--path", help="another file of the job (see `clockwork files`)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    p.add_argument("--interval", type=float, default=2.0)

    p = sub.add_parser("files", help="list a submission's output files")
    p.add_argument("uuid")

    p = sub.add_parser("download", help="download one output file")
    p.add_argument("uuid")
    p.add_argument("path")
    p.add_argument("dest", nargs="?", default=".")

    p = sub.add_parser("props", help="your props on a job: get, set, del")
    psub = p.add_subparsers(dest="props_command", metavar="get|set|del", parser_class=_Parser)
    psub.required = True
    q = psub.add_parser("get")
    _add_job_target(q)
    q = psub.add_parser("set", usage="clockwork props set [CLUSTER] ID NAME=VALUE...")
    q.add_argument("words", nargs="+", metavar="[CLUSTER] ID NAME=VALUE")
    q.add_argument("--cluster")
    q = psub.add_parser("del", usage="clockwork props del [CLUSTER] ID [NAME...]")
    q.add_argument("words", nargs="+", metavar="[CLUSTER] ID NAME")
    q.add_argument("--cluster")

    p = sub.add_parser("token", help="check your API token")
    tsub = p.add_subparsers(dest="token_command", metavar="check", parser_class=_Parser)
    tsub.required = True
    tsub.add_parser("check")
    return parser


# --------------------------------------------------------------------------- commands


def _cmd_jobs(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters: dict[str, Any] = {
        "cluster": args.cluster,
        "user": args.user,
        "state": args.state,
        "job_id": args.job_id,
        "array_job_id": args.array_job_id,
        "name": args.name,
        "partition": args.partition,
        "account": args.account,
        "submitted_after": args.submitted_after,
        "submitted_before": args.submitted_before,
        "sort": args.sort,
        "order": args.order,
        "page": args.page,
        "per_page": args.per_page,
    }
    if args.prop:
        name, _, value = args.prop.partition("=")
        filters["prop_name"], filters["prop_value"] = name, value or None
    filters = {k: v for k, v in filters.items() if v is not None}
    if args.all:
        out.table(list(client.iter_jobs(**filters)), JOB_COLUMNS)
        return EXIT_OK
    page = client.jobs(**filters)
    out.table(page.items, JOB_COLUMNS)
    if not out.as_json and page.total is not None and page.total > len(page.items):
        print(f"({len(page.items)} of {page.total}; --all for every page)", file=sys.stderr)
    return EXIT_OK


def _cmd_nodes(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters = {"cluster": args.cluster, "state": args.state, "name": args.name}
    filters = {k: v for k, v in filters.items() if v is not None}
    nodes = list(client.iter_nodes(**filters)) if args.all else client.nodes(**filters).items
    out.table(nodes, NODE_COLUMNS)
    return EXIT_OK


def _read_script(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a UTF-8 text file") from None


def _cmd_submit(
    client: Client, args: argparse.Namespace, out: Output, command: list[str] | None
) -> int:
    if command is not None and args.file:
        raise UsageError("give a script FILE or -- CMD ARGS, not both")
    if command is None and not args.file:
        raise UsageError("give a script FILE or -- CMD ARGS")
    if command is not None and not command:
        raise UsageError("nothing after --: give the command to run")
    slurm = _pairs(args.slurm)
    for key in ("job_name", "partition", "time", "mem", "cpus_per_task", "gpus", "account"):
        value = getattr(args, key)
        if value is not None:
            slurm[key] = value
    kwargs: dict[str, Any] = {
        "name": args.template,
        "slurm": slurm or None,
        "cwd": args.cwd,
        "uuid": args.uuid,
        "notification": {"methods": args.notify} if args.notify else None,
    }
    if command is not None:
        kwargs.update(cmd=command[0], params=command[1:])
    else:
        kwargs["script"] = _read_script(args.file)
    cluster = args.cluster or os.environ.get("CLOCKWORK_CLUSTER")
    submission = client.submit(cluster, **kwargs)  # type: ignore[arg-type]
    if out.as_json:
        out.json(submission.raw)
    else:
        job = f" job {submission.job_id}" if submission.job_id else ""
        out.line(f"{submission.uuid}  {submission.state}{job}")
    return EXIT_OK


def _state_of(obj: Any) -> str:
    return str(getattr(obj, "state", None) or getattr(obj, "job_state", "") or "")


def _is_final(obj: Any) -> bool:
    return _state_of(obj).upper() in Submission.FINAL_STATES


def _poll(
    fetch: Callable[[], Any],
    out: Output,
    *,
    interval: float,
    max_interval: float,
    timeout: float | None,
    sleep: Callable[[float], None],
) -> Any:
    """Fetch until the state is final, printing each change; backoff x1.5 while unchanged."""
    deadline = time.monotonic() + timeout if timeout else None
    last = None
    delay = interval
    while True:
        obj = fetch()
        state = _state_of(obj)
        if state != last:
            stamp = datetime.now().strftime("%H:%M:%S")
            if not out.as_json:
                out.line(f"{stamp}  {state}")
            last = state
            delay = interval
        else:
            delay = min(delay * 1.5, max_interval)
        if _is_final(obj):
            if out.as_json:
                out.json(obj.raw)
            return obj
        if deadline is not None and time.monotonic() + delay > deadline:
            raise ClockworkError(f"still {state} after {timeout:g} s")
        sleep(delay)


def _cmd_watch(client: Client, args: argparse.Namespace, out: Output, sleep: Any) -> int:
    words = args.target
    if len(words) == 1 and (_UUID.match(words[0]) or not words[0].isdigit()):
        uuid = words[0]

        def fetch() -> Any:
            return client.submission(uuid)

    else:
        cluster, job_id = _job_target(args)

        def fetch() -> Any:
            return client.job(cluster, job_id)

    _poll(
        fetch,
        out,
        interval=args.interval,
        max_interval=args.max_interval,
        timeout=args.watch_timeout,
        sleep=sleep,
    )
    return EXIT_OK


class _BytesOut:
    """A binary writer over the command's text output (its buffer when it has one)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.buffer = getattr(out, "buffer", None)

    def write(self, data: bytes) -> int:
        if self.buffer is not None:
            self.out.flush()
            self.buffer.write(data)
            self.buffer.flush()
        else:
            self.out.write(data.decode("utf-8", "replace"))
            self.out.flush()
        return len(data)


def _cmd_output(client: Client, args: argparse.Namespace, out: Output, sleep: Any) -> int:
    path = args.path or ("stderr" if args.stderr else "stdout")
    sink = _BytesOut(out.out)
    if not args.follow:
        client.download(args.uuid, path, sink)  # type: ignore[arg-type]
        return EXIT_OK
    offset = 0
    delay = args.interval
    while True:
        submission = client.submission(args.uuid)
        try:
            data = client.read_file(args.uuid, path, offset=offset)
        except HTTPStatusError as exc:
            if exc.status_code != 404 or submission.is_final:
                raise
            data = b""  # no output file yet
        if data:
            sink.write(data)
            offset += len(data)
            delay = args.interval
            continue  # there may be more right away
        if submission.is_final:
            return EXIT_OK
        sleep(delay)
        delay = min(delay * 1.5, 30.0)


def _split_target(words: list[str]) -> list[str]:
    """The leading ``[CLUSTER] ID`` of ``words`` (none: the Slurm job we run in)."""
    if words and words[0].isdigit():
        return words[:1]
    if len(words) >= 2 and "=" not in words[0] and words[1].isdigit():
        return words[:2]
    return []


def _cmd_props(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.props_command == "get":
        cluster, job_id = _job_target(args)
        props = client.job_props(cluster, job_id)
    else:
        words = list(args.words)
        args.target = _split_target(words)
        words = words[len(args.target) :]
        cluster, job_id = _job_target(args)
        if args.props_command == "set":
            if not words:
                raise UsageError("give NAME=VALUE pairs to set")
            props = client.set_job_props(cluster, job_id, _pairs(words))
        else:
            props = client.delete_job_props(cluster, job_id, words if words else None)
    if out.as_json:
        out.json(props)
    else:
        for key, value in props.items():
            out.line(f"{key}={_cell(value)}")
    return EXIT_OK


def run(
    argv: Sequence[str],
    *,
    stdout: IO[str],
    stderr: IO[str],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one command line; the exit status is returned, never raised."""
    argv = list(argv)
    command: list[str] | None = None
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    try:
        args = build_parser().parse_args(argv)
        if command is not None and args.command != "submit":
            raise UsageError("'--' is only for `clockwork submit -- CMD ARGS`")
        out = Output(args.json, stdout)
        with Client(args.url, args.token, timeout=args.timeout) as client:
            return _dispatch(client, args, out, command, sleep)
    except UsageError as exc:
        print(
            f"clockwork: {exc}" if not str(exc).startswith("clockwork") else str(exc), file=stderr
        )
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"clockwork: {exc}", file=stderr)
        return EXIT_USAGE
    except ClockworkError as exc:
        print(f"clockwork: error: {exc}", file=stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("clockwork: interrupted", file=stderr)
        return 130


def _dispatch(
    client: Client,
    args: argparse.Namespace,
    out: Output,
    command: list[str] | None,
    sleep: Callable[[float], None],
) -> int:
    name = args.command
    if name == "jobs":
        return _cmd_jobs(client, args, out)
    if name == "job":
        out.record(client.job(*_job_target(args)))
    elif name == "nodes":
        return _cmd_nodes(client, args, out)
    elif name == "node":
        out.record(client.node(args.cluster, args.name))
    elif name == "gpus":
        gpus = client.gpus()
        out.table(gpus, ("name", "display_name", "vendor", "memory_gb", "tflops_fp32"))
    elif name == "clusters":
        out.table(client.clusters(), ("name", "display_name", "last_success", "last_error_message"))
    elif name in ("me", "token"):
        user = client.token_check()
        if out.as_json:
            out.json(user.raw)
        else:
            roles = ",".join(user.roles)
            accounts = ", ".join(f"{c}:{u}" for c, u in sorted(user.cluster_accounts.items()))
            prefix = "token OK: " if name == "token" else ""
            out.line(
                f"{prefix}{user.email} ({user.display_name}) roles={roles} {accounts}".rstrip()
            )
    elif name == "submit":
        return _cmd_submit(client, args, out, command)
    elif name == "cancel":
        submission = client.cancel(args.uuid)
        if out.as_json:
            out.json(submission.raw)
        else:
            out.line(f"{submission.uuid}  {submission.state}")
    elif name == "submissions":
        out.table(
            list(client.iter_submissions(state=args.state, cluster=args.cluster)),
            SUBMISSION_COLUMNS,
        )
    elif name == "adopt":
        submission = client.adopt(*_job_target(args))
        if out.as_json:
            out.json(submission.raw)
        else:
            out.line(f"{submission.uuid}  {submission.state} job {submission.job_id}")
    elif name == "watch":
        return _cmd_watch(client, args, out, sleep)
    elif name == "output":
        return _cmd_output(client, args, out, sleep)
    elif name == "files":
        out.table(client.files(args.uuid), ("path", "kind", "size", "modified"))
    elif name == "download":
        target = client.download(args.uuid, args.path, args.dest)
        if not out.as_json:
            out.line(str(target))
        else:
            out.json({"path": str(target)})
    elif name == "props":
        return _cmd_props(client, args, out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: ``clockwork ...``."""
    return run(sys.argv[1:] if argv is None else argv, stdout=sys.stdout, stderr=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
