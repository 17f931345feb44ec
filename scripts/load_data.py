#!/usr/bin/env python3
"""Load a realistic generated data set into a Clockwork database (demo, benchmarks).

    python scripts/load_data.py --uri MONGODB_URI [--db clockwork] [--jobs 100000]
        [--users 300] [--seed 1] [--replace] [--cluster NAME ...]

A database whose ``jobs`` collection already holds data is left alone unless
``--replace`` is given. Exits 2 with a message (no traceback) when the database
cannot be reached or the arguments are wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import re
import time

import pymongo
from pymongo.errors import ConfigurationError, PyMongoError

from clockwork_core.db import get_client
from test_common.datagen import load_dataset


def _redact(uri: str) -> str:
    """The URI without its password, fit for a message."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="load_data", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--uri", required=True, help="MongoDB URI, e.g. mongodb://127.0.0.1:27017")
    parser.add_argument("--db", default="clockwork", help="database name (default clockwork)")
    parser.add_argument("--jobs", type=_positive, default=100_000)
    parser.add_argument("--users", type=_positive, default=300)
    parser.add_argument("--seed", default="1", help="same seed, same data (default 1)")
    parser.add_argument("--replace", action="store_true", help="drop and reload existing data")
    parser.add_argument(
        "--cluster", action="append", default=[], help="extra cluster name (repeatable)"
    )
    parser.add_argument("--batch-size", type=_positive, default=5000)
    parser.add_argument("--progress-every", type=_positive, default=50_000)
    parser.add_argument("--timeout-ms", type=_positive, default=5000)
    args = parser.parse_args(argv)
    seed: int | str = int(args.seed) if args.seed.isdigit() else args.seed

    where = f"{_redact(args.uri)} (database {args.db})"
    started = time.monotonic()
    next_report = args.progress_every or args.jobs + 1

    def progress(done: int, total: int) -> None:
        nonlocal next_report
        if done >= next_report or done == total:
            elapsed = max(time.monotonic() - started, 1e-9)
            print(
                f"jobs {done}/{total} ({100 * done / max(total, 1):.0f}%) "
                f"{done / elapsed:,.0f} jobs/s",
                flush=True,
            )
            while next_report <= done:
                next_report += args.progress_every or total + 1

    client: pymongo.MongoClient | None = None
    try:
        client = get_client(args.uri, args.timeout_ms)
        client.admin.command("ping")
    except ConfigurationError as exc:
        print(f"load_data: bad --uri {_redact(args.uri)!r}: {_short(exc)}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        print(f"load_data: cannot reach the database at {where}: {_short(exc)}", file=sys.stderr)
        return 2
    print(f"loading {args.jobs} jobs, {args.users} users (seed {seed}) into {where}", flush=True)
    try:
        result = load_dataset(
            client[args.db],
            n_jobs=args.jobs,
            n_users=args.users,
            seed=seed,
            batch_size=max(args.batch_size, 1),
            progress=progress,
            replace=args.replace,
            clusters=args.cluster,
        )
    except PyMongoError as exc:
        print(f"load_data: the database at {where} failed: {_short(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("load_data: interrupted; run again to resume", file=sys.stderr)
        return 130
    finally:
        client.close()
    if result["reused"]:
        print(
            f"the database already holds {result['jobs']} jobs, {result['users']} users, "
            f"{result['nodes']} nodes: left alone (use --replace to reload)"
        )
        return 0
    seconds = result["seconds"]
    print(
        f"loaded {result['jobs']} jobs, {result['users']} users, {result['nodes']} nodes, "
        f"{result['gpus']} GPU models on {', '.join(result['clusters'])} in {seconds:.1f} s "
        f"({result['jobs'] / max(seconds, 1e-9):,.0f} jobs/s"
        + (f", {result['duplicates']} already there" if result["duplicates"] else "")
        + ")"
    )
    return 0


def _short(exc: Exception) -> str:
    """The first line of a driver error, with any credentials masked."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _redact(text.split(" (configured timeouts")[0])[:300]


if __name__ == "__main__":
    sys.exit(main())
