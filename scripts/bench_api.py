#!/usr/bin/env python3
"""Benchmark the REST API under gunicorn over 100,000 generated jobs.

    python scripts/bench_api.py [--jobs 100000] [--users 300] [--requests 300]

Starts its own embedded database (SecantusDB) in a temporary directory, loads
the generated data set (``test_common.datagen``), creates API tokens for the
demo student and admin, serves ``clockwork_web.wsgi:app`` with gunicorn (2
workers, gthread, 8 threads) on a free loopback port, then measures, at
concurrency 1 and 16, a bounded number of requests per case:

- a user's jobs list, 50 per page, filtered by state;
- one job;
- the nodes list;
- an admin's unfiltered jobs list sorted by submit time.

Each case is warmed up first (a few requests per worker, not measured: the
first request of a worker opens its database connections and fills the count
cache). Prints requests/s, p50 and p99 per case; the LAST line is one JSON
object ``{"results": [{"endpoint", "concurrency", "rps", "p50_ms", "p99_ms",
"errors"}, ...]}``. Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clockwork_core.db import get_client  # noqa: E402
from test_common import embedded_db  # noqa: E402

STUDENT = "student@example.org"
ADMIN = "admin@example.org"
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
WARMUP_PER_CASE = 24


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _config_toml(uri: str, db_name: str, clusters: list[str]) -> str:
    lines = [
        "[database]",
        f'uri = "{uri}"',
        f'name = "{db_name}"',
        "",
        "[web]",
        f'secret_key = "bench-{os.urandom(8).hex()}"',
        "per_page_default = 50",
        "",
    ]
    for name in clusters:
        lines += [f"[clusters.{name}]", f'display_name = "{name}"', ""]
    return "\n".join(lines)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            if requests.get(url + "/api/v1/openapi.json", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer in {START_TIMEOUT_S:.0f} s")


def _measure(
    base: str, make_url: Callable[[int], str], headers: dict[str, str], concurrency: int, n: int
) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` threads, one requests.Session each."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        nonlocal errors
        session = requests.Session()
        session.headers.update(headers)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            try:
                response = session.get(base + make_url(i), timeout=REQUEST_TIMEOUT_S)
                ok = response.status_code == 200
                response.content  # noqa: B018 - read the whole body
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors += 1
        session.close()

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    wall = time.perf_counter() - wall
    return {
        "concurrency": concurrency,
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300, help="per case and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", default="bench")
    args = parser.parse_args(argv)

    from clockwork_web.auth.tokens import create_token
    from test_common.datagen import load_dataset

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-api-"))
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
        student_token, _ = create_token(db, STUDENT, "bench")
        admin_token, _ = create_token(db, ADMIN, "bench")
        mine = [
            (d["slurm"]["cluster_name"], d["slurm"]["job_id"])
            for d in db.jobs.find({"cw.user": STUDENT}, {"slurm": 1}).limit(100)
        ]
        if not mine:
            raise RuntimeError("the student owns no job in the data set")

        port = _free_port()
        env = {
            **os.environ,
            "CLOCKWORK_CONFIG": str(config_path),
            "PYTHONPATH": str(ROOT),
            # the production gunicorn.conf.py is used; only its access log is dropped
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

        user = {"Authorization": f"Bearer {student_token}"}
        admin = {"Authorization": f"Bearer {admin_token}"}
        cases: list[tuple[str, Callable[[int], str], dict[str, str]]] = [
            (
                "jobs list (user, state filter, 50/page)",
                lambda i: "/api/v1/jobs?state=COMPLETED&per_page=50",
                user,
            ),
            ("one job", lambda i: "/api/v1/jobs/{}/{}".format(*mine[i % len(mine)]), user),
            ("nodes list", lambda i: "/api/v1/nodes", user),
            (
                "jobs list (admin, unfiltered, by submit time)",
                lambda i: "/api/v1/jobs?sort=submit_time&order=desc",
                admin,
            ),
        ]
        results = []
        for name, make_url, headers in cases:
            _measure(base, make_url, headers, 8, WARMUP_PER_CASE)
            for concurrency in args.concurrency:
                result = {
                    "endpoint": name,
                    **_measure(base, make_url, headers, concurrency, args.requests),
                }
                results.append(result)
                print(
                    f"{name:48s} c={concurrency:<3d} {result['rps']:8.1f} req/s  "
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
