#!/usr/bin/env python3
"""Benchmark the HTML pages under gunicorn over 100,000 generated jobs.

    python scripts/bench_pages.py [--jobs 100000] [--users 300] [--db-dir DIR]
                                  [--loadgen auto|wrk|python] [--duration S]
                                  [--requests N] [--workers N] [--threads N]

The same set-up as ``scripts/bench_api.py`` (whose helpers and options it
uses, ``--db-dir`` and ``--loadgen`` included): its own embedded database, the generated data
set, gunicorn (gthread) on a free loopback port. Pages authenticate
with a browser session: a session cookie signed with the app's secret for the
demo student (and the demo admin), as a login would leave. Measured at
concurrency 1 and 16, after a warm-up:

- the dashboard;
- the job search with its default filters;
- the job search filtered on a state and a cluster (the student, then the admin);
- one job's page.

Prints requests/s, p50 and p99 per case; the LAST line is one JSON object
``{"results": [{"endpoint", "concurrency", "rps", "p50_ms", "p99_ms",
"errors", "cpu_ms"}, ...]}``. Target: p99 <= 150 ms at concurrency 16.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_api import (  # noqa: E402
    ADMIN,
    DB_NAME,
    STUDENT,
    WARMUP_PER_CASE,
    _config_toml,
    _free_port,
    _measure,
    _wait_until_up,
    add_common_options,
    close_dataset,
    measure,
    open_dataset,
    process_groups,
    report_line,
    resolve_loadgen,
    start_gunicorn,
    stop_gunicorn,
)

from test_common import embedded_db  # noqa: E402


def session_cookie(config_path: Path, email: str) -> str:
    """The session cookie a login of ``email`` leaves, signed with the app's secret."""
    from clockwork_core.config import load_config
    from clockwork_web import create_app
    from clockwork_web.auth.access import SESSION_USER

    app = create_app(load_config(config_path, env={}))
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({SESSION_USER: email, "_permanent": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_pages", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    args = parser.parse_args(argv)
    resolve_loadgen(args)

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-pages-"))
    gunicorn: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    try:
        directory, db, clusters = open_dataset(args.db_dir, tmp, args.jobs, args.users, args.seed)
        server = embedded_db.status(directory)
        assert server is not None
        config_path = tmp / "clockwork.toml"
        config_path.write_text(_config_toml(server.uri, DB_NAME, clusters))
        mine = [
            (d["slurm"]["cluster_name"], d["slurm"]["job_id"])
            for d in db.jobs.find({"cw.user": STUDENT}, {"slurm": 1}).limit(100)
        ]
        if not mine:
            raise RuntimeError("the student owns no job in the data set")
        cookie_name = "session"
        student = {"Cookie": f"{cookie_name}={session_cookie(config_path, STUDENT)}"}
        admin = {"Cookie": f"{cookie_name}={session_cookie(config_path, ADMIN)}"}

        port = _free_port()
        gunicorn = start_gunicorn(config_path, port, args.workers, args.threads)
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, gunicorn)
        processes = process_groups(server.pid, gunicorn.pid)

        cluster = clusters[0]
        cases: list[tuple[str, Callable[[int], str], dict[str, str]]] = [
            ("dashboard (user)", lambda i: "/", student),
            ("job search, default (user)", lambda i: "/jobs", student),
            (
                "job search, state+cluster (user)",
                lambda i: f"/jobs?state=RUNNING&cluster={cluster}",
                student,
            ),
            (
                "job search, state+cluster (admin)",
                lambda i: f"/jobs?state=RUNNING&cluster={cluster}",
                admin,
            ),
            ("job page (user)", lambda i: "/jobs/{}/{}".format(*mine[i % len(mine)]), student),
        ]
        results = []
        for name, make_url, headers in cases:
            if args.only and args.only not in name:
                continue
            warm = _measure(base, make_url, headers, 8, WARMUP_PER_CASE)
            if warm["errors"]:
                raise RuntimeError(f"{name}: {warm['errors']} errors while warming up")
            for concurrency in args.concurrency:
                result = {
                    "endpoint": name,
                    **measure(args, base, make_url, headers, concurrency, processes),
                }
                results.append(result)
                print(report_line(name, result, 40))
        print(json.dumps({"results": results}))
        return 0
    finally:
        stop_gunicorn(gunicorn)
        if directory is not None:
            close_dataset(directory, keep=args.db_dir is not None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
