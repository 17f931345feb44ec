#!/usr/bin/env python3
"""Benchmark the HTML pages under gunicorn over 100,000 generated jobs.

    python scripts/bench_pages.py [--jobs 100000] [--users 300] [--requests 300]

The same set-up as ``scripts/bench_api.py`` (whose helpers it uses): its own
embedded database in a temporary directory, the generated data set, gunicorn
(2 workers, gthread, 8 threads) on a free loopback port. Pages authenticate
with a browser session: a session cookie signed with the app's secret for the
demo student (and the demo admin), as a login would leave. Measured at
concurrency 1 and 16, after a warm-up:

- the dashboard;
- the job search with its default filters;
- the job search filtered on a state and a cluster (the student, then the admin);
- one job's page.

Prints requests/s, p50 and p99 per case; the LAST line is one JSON object
``{"results": [{"endpoint", "concurrency", "rps", "p50_ms", "p99_ms",
"errors"}, ...]}``. Target: p99 <= 150 ms at concurrency 16.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
    STUDENT,
    WARMUP_PER_CASE,
    _config_toml,
    _free_port,
    _measure,
    _wait_until_up,
)

from clockwork_core.db import get_client  # noqa: E402
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
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300, help="per case and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", default="bench")
    args = parser.parse_args(argv)

    from test_common.datagen import load_dataset

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-pages-"))
    gunicorn: subprocess.Popen[bytes] | None = None
    try:
        server = embedded_db.up(tmp / "db")
        db_name = "clockwork_bench"
        db = get_client(server.uri)[db_name]
        print(f"loading {args.jobs} jobs for {args.users} users ...", file=sys.stderr)
        dataset = load_dataset(db, n_jobs=args.jobs, n_users=args.users, seed=args.seed)
        print(f"loaded in {dataset['seconds']} s: {dataset}", file=sys.stderr)
        clusters = dataset["clusters"]
        config_path = tmp / "clockwork.toml"
        config_path.write_text(_config_toml(server.uri, db_name, clusters))
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
        env = {
            **os.environ,
            "CLOCKWORK_CONFIG": str(config_path),
            "PYTHONPATH": str(ROOT),
            "CLOCKWORK_ACCESS_LOG": os.devnull,
        }
        gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "clockwork_web.wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, gunicorn)

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
            warm = _measure(base, make_url, headers, 8, WARMUP_PER_CASE)
            if warm["errors"]:
                raise RuntimeError(f"{name}: {warm['errors']} errors while warming up")
            for concurrency in args.concurrency:
                result = {
                    "endpoint": name,
                    **_measure(base, make_url, headers, concurrency, args.requests),
                }
                results.append(result)
                print(
                    f"{name:40s} c={concurrency:<3d} {result['rps']:8.1f} req/s  "
                    f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                    f"errors {result['errors']}"
                )
        print(json.dumps({"results": results}))
        return 0
    finally:
        if gunicorn is not None and gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            try:
                gunicorn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
                gunicorn.wait()
        embedded_db.down(tmp / "db", purge=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
