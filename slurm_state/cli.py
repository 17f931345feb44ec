"""``python -m slurm_state``: the scraper's command line.

Each subcommand is one entry of :data:`COMMANDS`: ``name -> (help,
add_arguments, run)``. ``add_arguments(parser)`` declares its options and
``run(args) -> int`` does the work and returns the exit status. Adding a
command is adding a pair of functions and one line to the dict.

Exit status: 0 success, 1 some records were skipped (or a cluster failed),
2 usage error or unreadable input. Errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from clockwork_core.config import AnonymizeConfig

from .parsers import (
    JOB_FORMATS,
    NODE_FORMATS,
    SlurmParseError,
    detect_format,
    parse_jobs,
    parse_nodes,
)
from .parsers._input import HEAD_SIZE

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A problem with the command line or its files: reported, exit status 2."""


def _open_input(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --------------------------------------------------------------------------- parse


def add_parse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=("auto", "jobs", "nodes"),
        default="auto",
        help="what the files hold (default: from the format)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("auto", *JOB_FORMATS, *NODE_FORMATS),
        default="auto",
        help="report format (default: detected per file)",
    )
    parser.add_argument("--cluster", default="unknown", help="cluster_name of the records")
    parser.add_argument(
        "--timezone", default="UTC", help="the cluster's time zone (sacct prints local times)"
    )
    parser.add_argument("--slurm-version", default=None, help="e.g. 22.05 (JSON without meta)")
    parser.add_argument("files", nargs="+", metavar="FILE", help="reports to parse ('-' = stdin)")


def _kind_of(fmt: str, kind: str, head: bytes, name: str) -> tuple[str, str]:
    if fmt == "auto":
        try:
            fmt = detect_format(head)
        except SlurmParseError as exc:
            raise UsageError(f"{name}: {exc.reason}") from None
    fmt_kind = "jobs" if fmt in JOB_FORMATS else "nodes"
    if kind != "auto" and kind != fmt_kind:
        raise UsageError(f"{name}: format {fmt} holds {fmt_kind}, not {kind}")
    return fmt, fmt_kind


def run_parse(args: argparse.Namespace) -> int:
    """Print one ``{"slurm": ..., "cw": {}}`` document per record; skipped ones on stderr."""
    skipped = 0
    out = sys.stdout
    for name in args.files:
        errors: list[SlurmParseError] = []
        stream = _open_input(name)
        try:
            head = stream.peek(HEAD_SIZE)[:HEAD_SIZE] if hasattr(stream, "peek") else b""
            if not head and args.fmt == "auto":
                raise UsageError(f"{name}: empty input, cannot detect its format")
            fmt, kind = _kind_of(args.fmt, args.kind, head, name)
            parse = parse_jobs if kind == "jobs" else parse_nodes
            try:
                records = parse(
                    stream,
                    fmt=fmt,
                    cluster_name=args.cluster,
                    source=name,
                    errors=errors,
                    slurm_version=args.slurm_version,
                    timezone=args.timezone,
                )
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            for record in records:
                document = {"slurm": record.to_dict(), "cw": {}}
                out.write(json.dumps(document, default=_json_default, ensure_ascii=False) + "\n")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{name}: cannot decode: {exc}") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        for err in errors:
            print(str(err), file=sys.stderr)
        skipped += len(errors)
    out.flush()
    if skipped:
        print(f"{skipped} record(s) skipped", file=sys.stderr)
    return 1 if skipped else 0


# --------------------------------------------------------------------------- anonymize

_PRESETS: dict[str, dict[str, str]] = {
    "keep": {},
    "pseudonymize": {
        "usernames": "pseudonymize",
        "job_names": "hash",
        "paths": "hash",
        "comments": "hash",
    },
    "drop": {"usernames": "pseudonymize", "job_names": "drop", "paths": "drop", "comments": "drop"},
}


def add_anonymize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        choices=tuple(_PRESETS),
        default="pseudonymize",
        help="preset: pseudonymize users and hash names/paths/comments (default), "
        "or drop them, or keep everything",
    )
    parser.add_argument("--usernames", choices=("keep", "pseudonymize"), help="override")
    parser.add_argument("--job-names", choices=("keep", "drop", "hash"), help="override")
    parser.add_argument("--paths", choices=("keep", "drop", "hash"), help="override")
    parser.add_argument("--comments", choices=("keep", "drop", "hash"), help="override")
    parser.add_argument("--key-file", type=Path, help="file holding the HMAC key")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("auto", *JOB_FORMATS),
        default="auto",
        help="report format (default: detected)",
    )
    parser.add_argument(
        "input", metavar="IN", help="sacct --parsable2 or --json report ('-' = stdin)"
    )
    parser.add_argument("output", metavar="OUT", help="where to write it ('-' = stdout)")


def _policy(args: argparse.Namespace) -> AnonymizeConfig:
    values = dict(_PRESETS[args.policy])
    for field in ("usernames", "job_names", "paths", "comments"):
        if getattr(args, field) is not None:
            values[field] = getattr(args, field)
    return AnonymizeConfig(**values)


def run_anonymize(args: argparse.Namespace) -> int:
    """Rewrite a report with users, names, paths and comments anonymized (same format)."""
    from .anonymize import Anonymizer, anonymize_json, anonymize_psv
    from .parsers._input import Input

    policy = _policy(args)
    key: bytes | None = None
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes().strip()
        except OSError as exc:
            raise UsageError(f"{args.key_file}: cannot read: {exc.strerror or exc}") from None
    try:
        anonymizer = Anonymizer(policy, key)
    except ValueError as exc:
        raise UsageError(f"{exc} (--key-file)") from None
    stream = _open_input(args.input)
    tmp_name = None
    try:
        source = Input(stream)
        fmt = args.fmt
        if fmt == "auto":
            try:
                fmt = detect_format(source.head)
            except SlurmParseError as exc:
                raise UsageError(f"{args.input}: {exc.reason}") from None
        if fmt not in JOB_FORMATS:
            raise UsageError(f"{args.input}: only sacct/squeue job reports can be anonymized")
        pieces = (
            (line + "\n" for line in anonymize_psv(source.lines(), anonymizer))
            if fmt == "psv"
            else anonymize_json(source.chunks(), anonymizer)
        )
        if args.output == "-":
            for piece in pieces:
                sys.stdout.write(piece)
            sys.stdout.flush()
            return 0
        target = Path(args.output)
        # write next to the target, then rename: a failure never leaves half a file
        fd, tmp_name = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for piece in pieces:
                fh.write(piece)
        os.replace(tmp_name, target)
        tmp_name = None
        return 0
    except SlurmParseError as exc:
        print(f"{args.input}:{exc.line_no or ''}: {exc.reason} (nothing written)", file=sys.stderr)
        return 1
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if stream is not sys.stdin.buffer:
            stream.close()


# --------------------------------------------------------------------------- main

#: name -> (help, add_arguments, run): one line per subcommand.
COMMANDS: dict[str, tuple[str, AddArguments, Run]] = {
    "parse": ("parse reports and print the records as JSON lines", add_parse_arguments, run_parse),
    "anonymize": (
        "rewrite a sacct report into a shareable fixture",
        add_anonymize_arguments,
        run_anonymize,
    ),
    "scrape": (
        "scrape clusters into the database (one line per cluster, then a summary)",
        lambda p: _scrape_module().add_scrape_arguments(p),
        lambda a: _scrape_module().run_scrape(a),
    ),
    "watch": (
        "scrape every --every seconds until stopped (for containers)",
        lambda p: _scrape_module().add_watch_arguments(p),
        lambda a: _scrape_module().run_watch(a),
    ),
}


def _scrape_module() -> Any:
    """slurm_state.scrape, imported only for the commands that use the database."""
    from slurm_state import scrape

    return scrape


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m slurm_state", description="Clockwork's Slurm scraper."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `... | head`: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
