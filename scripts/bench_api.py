#!/usr/bin/env python3
"""Benchmark the REST API under gunicorn over 100,000 generated jobs.

    python scripts/bench_api.py [--jobs 100000] [--users 300] [--db-dir DIR]
                                [--loadgen auto|wrk|python] [--duration S]
                                [--requests N] [--workers N] [--threads N]
                                [--load-concurrency 64] [--load-duration 60]

Starts its own embedded database (SecantusDB) in a temporary directory, loads
the generated data set (``test_common.datagen``), creates API tokens for the
demo student and admin, serves ``clockwork_web.wsgi:app`` with gunicorn
with the production ``gunicorn.conf.py`` (``--workers``/``--threads`` override
it) on a free loopback port, then measures, at concurrency 1 and 16:

- a user's jobs list, 50 per page, filtered by state;
- one job;
- the nodes list;
- an admin's unfiltered jobs list sorted by submit time.

The load comes from ``wrk`` (``--loadgen auto``, the default, installs it from
Debian's packages when run as root there, as ``test.sh`` does for Chromium),
for ``--duration`` seconds per case and concurrency: a C load generator leaves
the two cores to the server and does not add its own GIL waits to the latencies. Without it, a Python client (one thread
and one keep-alive session per connection) sends ``--requests`` requests per
case; it spends ~1 ms of CPU per request on this machine, so its numbers are a
little worse. The line of each case says which one ran.

Each case is warmed up first (a few requests per worker, not measured: the
first request of a worker opens its database connections and fills the count
cache). Prints requests/s, p50 and p99 per case, and the CPU milliseconds the
database, the gunicorn workers and the load generator spent per request.

Then the load case: ``--load-concurrency`` clients (64) for ``--load-duration``
seconds (60; 0 skips it) send a user's requests in turn over the jobs list,
one job and the nodes list, each giving up after ``--load-timeout`` seconds
(10, clockwork_tools' default). Next to the clients' latencies it prints the
server's, read from gunicorn's access log (``%(D)s``: from the request read
to the response sent), the ratio of the p99s and the timeouts, then PASS, or
FAIL and the exit status 1 when a request timed out or the clients' p99 is
more than ``--load-max-ratio`` (3) times the server's: requests then waited
before the app saw them (in the listen queue, behind idle kept-alive
connections).

The LAST line is one JSON object ``{"results": [{"endpoint", "concurrency",
"rps", "p50_ms", "p99_ms", "errors", "timeouts", "cpu_ms", "loadgen"}, ...],
"load": {..., "server_p50_ms", "server_p99_ms", "ratio", "problems"}}``.
Everything it started is stopped at the end.

``--db-dir DIR`` keeps the database and its data in DIR between runs: a data
set of the same size and seed already there is reused (loading 100,000 jobs
takes minutes), its job indexes are brought in line with ``INDEXES`` (extra
ones dropped), and the server is stopped (not purged) at the end. Note that
the generated times are relative to when the data was loaded.
"""

from __future__ import annotations

import argparse
import itertools
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

from clockwork_core.db import INDEXES, get_client  # noqa: E402
from test_common import embedded_db  # noqa: E402

STUDENT = "student@example.org"
ADMIN = "admin@example.org"
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
WARMUP_PER_CASE = 24
LIST_USER = "/api/v1/jobs?state=COMPLETED&per_page=50"
LIST_ADMIN = "/api/v1/jobs?sort=submit_time&order=desc"
DB_NAME = "clockwork_bench"
#: The load case: many clients at once (scripts polling the API), for long
#: enough that a connection left waiting in the listen queue shows.
LOAD_CONCURRENCY = 64
LOAD_DURATION_S = 60.0
#: A client gives up after this long (clockwork_tools' default timeout).
LOAD_TIMEOUT_S = 10.0
#: The load case fails when the clients' p99 exceeds the server's p99 by more
#: than this factor (requests waited somewhere before the app saw them), or
#: when any request timed out.
LOAD_MAX_RATIO = 3.0
#: The bench's access log: the time the server spent on each request (gunicorn's
#: ``%(D)s``, in microseconds, from the request line read to the response
#: sent) and its status.
ACCESS_LOG_FORMAT = "%(D)s %(s)s"
#: The data set recorded in a --db-dir, reused when size and seed match.
DATASET_FILE = "bench-dataset.json"
#: wrk's script: rotates over PATHS, counts non-200 answers as errors and
#: prints the summary as one JSON line (latencies in microseconds).
WRK_SCRIPT = """
local paths = {%s}
local headers = {%s}
local counter, threads = 0, {}
errors = 0  -- a global: done() reads each thread's with thread:get
function setup(thread) table.insert(threads, thread) end
function init(args) counter = math.random(#paths) end
function request()
  counter = counter %% #paths + 1
  return wrk.format("GET", paths[counter], headers)
end
function response(status, hdrs, body)
  if status ~= 200 then errors = errors + 1 end
end
function done(summary, latency, requests)
  local bad = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  for _, t in ipairs(threads) do bad = bad + t:get("errors") end
  io.write(string.format(
    '\\nWRK-JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d, "timeouts": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    summary.errors.timeout))
end
"""


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


def open_dataset(
    db_dir: Path | None, tmp: Path, n_jobs: int, n_users: int, seed: str
) -> tuple[Path, Any, list[str]]:
    """(server directory, database, cluster names): a loaded data set, reused if possible."""
    from test_common.datagen import load_dataset

    directory = (db_dir or tmp / "db").resolve()
    wanted = {"jobs": n_jobs, "users": n_users, "seed": seed}
    meta_path = directory / DATASET_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    reuse = db_dir is not None and {k: meta.get(k) for k in wanted} == wanted
    if not reuse:
        embedded_db.down(directory, purge=True)
    server = embedded_db.up(directory)
    db = get_client(server.uri)[DB_NAME]
    if reuse and db.jobs.find_one({}, {"_id": 1}) is not None:
        _sync_job_indexes(db)
        print(f"reusing the data set in {directory}: {meta}", file=sys.stderr)
        return directory, db, list(meta["clusters"])
    meta_path.unlink(missing_ok=True)
    print(f"loading {n_jobs} jobs for {n_users} users ...", file=sys.stderr)
    dataset = load_dataset(db, n_jobs=n_jobs, n_users=n_users, seed=seed, replace=True)
    print(f"loaded in {dataset['seconds']} s: {dataset}", file=sys.stderr)
    if db_dir is not None:
        meta_path.write_text(json.dumps({**wanted, "clusters": dataset["clusters"]}))
    return directory, db, list(dataset["clusters"])


def _sync_job_indexes(db: Any) -> None:
    """Drop the job indexes ``INDEXES`` no longer lists; create the new ones."""
    from clockwork_core.db import ensure_indexes

    wanted = {model.document["name"] for model in INDEXES["jobs"]} | {"_id_"}
    for name in list(db.jobs.index_information()):
        if name not in wanted:
            print(f"dropping the job index {name} (no longer in INDEXES)", file=sys.stderr)
            db.jobs.drop_index(name)
    ensure_indexes(db)


def close_dataset(directory: Path, keep: bool) -> None:
    """Stop the database; delete its data unless it is kept (--db-dir)."""
    embedded_db.down(directory, purge=not keep)


def _cpu_seconds(pids: list[int], with_children: bool = False) -> float:
    """User+system CPU seconds of these processes (gone ones count 0), and of
    their descendants as they are now if ``with_children``."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            members = [process, *(process.children(recursive=True) if with_children else [])]
        except psutil.Error:
            continue
        for member in members:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


#: The groups whose CPU a run measures; gunicorn's workers are listed at each
#: measurement (the arbiter forks them one by one after the app answers).
WITH_CHILDREN = frozenset({"gunicorn"})


def process_groups(db_pid: int, gunicorn_pid: int) -> dict[str, list[int]]:
    """The processes whose CPU a run measures: database, gunicorn (and workers), client."""
    return {"db": [db_pid], "gunicorn": [gunicorn_pid], "client": [os.getpid()]}


def _group_cpu(processes: dict[str, list[int]]) -> dict[str, float]:
    return {k: _cpu_seconds(v, k in WITH_CHILDREN) for k, v in processes.items()}


def _measure(
    base: str,
    make_url: Callable[[int], str],
    headers: dict[str, str],
    concurrency: int,
    n: int,
    processes: dict[str, list[int]] | None = None,
    duration: float | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` threads, one requests.Session each
    (with ``duration``, as many as fit in that many seconds instead).

    With ``processes``, also the CPU milliseconds per request each group spent.
    Timed-out requests count as errors and as ``timeouts``; as with wrk, their
    latency is not recorded.
    """
    latencies: list[float] = []
    errors = timeouts = 0
    lock = threading.Lock()
    counter = iter(range(n)) if duration is None else itertools.count()
    deadline = time.monotonic() + duration if duration is not None else float("inf")

    def worker() -> None:
        nonlocal errors, timeouts
        session = requests.Session()
        session.headers.update(headers)
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            timed_out = False
            try:
                response = session.get(base + make_url(i), timeout=timeout)
                ok = response.status_code == 200
                response.content  # noqa: B018 - read the whole body
            except requests.Timeout:
                ok, timed_out = False, True
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                if not timed_out:
                    latencies.append(elapsed)
                timeouts += timed_out
                if not ok:
                    errors += 1
        session.close()

    before = _group_cpu(processes or {})
    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    wall = time.perf_counter() - wall
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "errors": errors,
        "timeouts": timeouts,
    }
    if processes:
        after = _group_cpu(processes)
        result["cpu_ms"] = {
            k: round((after[k] - before[k]) * 1000 / max(len(latencies) + timeouts, 1), 2)
            for k in processes
        }
    return result


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _measure_wrk(
    base: str,
    make_url: Callable[[int], str],
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    processes: dict[str, list[int]] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> dict[str, Any]:
    """Like :func:`_measure`, with wrk sending requests for ``duration`` seconds
    (the paths of the first 100 requests, in turn)."""
    import resource

    paths = [make_url(i) for i in range(100)]
    script = WRK_SCRIPT % (
        ", ".join(_lua_string(p) for p in paths),
        ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    before = _group_cpu(processes or {})
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(2, concurrency)}",
                f"-c{concurrency}",
                f"-d{max(1, round(duration))}s",
                f"--timeout={max(1, round(timeout))}s",
                "-s",
                f.name,
                base + paths[0],
            ],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0 or "WRK-JSON " not in out.stdout:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK-JSON "))
    summary = json.loads(line.removeprefix("WRK-JSON "))
    n = max(summary["requests"], 1)
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "rps": round(summary["requests"] / (summary["duration_us"] / 1e6), 1),
        "p50_ms": round(summary["p50_us"] / 1000, 1),
        "p99_ms": round(summary["p99_us"] / 1000, 1),
        "errors": summary["errors"],
        "timeouts": summary["timeouts"],
    }
    if processes:
        now = _group_cpu(processes)
        cpu = {k: now[k] - before[k] for k in processes if k != "client"}
        cpu["client"] = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        result["cpu_ms"] = {k: round(v * 1000 / n, 2) for k, v in cpu.items()}
    return result


def measure(
    args: argparse.Namespace,
    base: str,
    make_url: Callable[[int], str],
    headers: dict[str, str],
    concurrency: int,
    processes: dict[str, list[int]] | None = None,
    *,
    duration: float | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> dict[str, Any]:
    """One measured run with the load generator ``args.loadgen`` names, for
    ``duration`` seconds if given (else ``args.duration`` or ``args.requests``)."""
    if args.loadgen == "wrk":
        result = _measure_wrk(
            base, make_url, headers, concurrency, duration or args.duration, processes, timeout
        )
    else:
        result = _measure(
            base,
            make_url,
            headers,
            concurrency,
            args.requests,
            processes,
            duration=duration,
            timeout=timeout,
        )
    return {**result, "loadgen": args.loadgen}


def server_times(access_log: Path, offset: int = 0) -> list[float]:
    """The server-side seconds of each request in ``access_log`` (written in
    :data:`ACCESS_LOG_FORMAT`) from byte ``offset`` on."""
    with access_log.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    times = []
    for line in lines:
        field = line.split(" ", 1)[0]
        if field.isdigit():
            times.append(int(field) / 1e6)
    return times


def load_verdict(result: dict[str, Any], max_ratio: float = LOAD_MAX_RATIO) -> list[str]:
    """Why the load case fails (empty if it holds): a timeout, or a client p99
    more than ``max_ratio`` times the server's."""
    problems = []
    if result["timeouts"]:
        problems.append(f"{result['timeouts']} request(s) timed out")
    if not result["ratio"] <= max_ratio:  # NaN (no request logged) fails too
        problems.append(f"client p99 is {result['ratio']} x the server's (max {max_ratio:g})")
    return problems


def measure_load(
    args: argparse.Namespace,
    base: str,
    make_url: Callable[[int], str],
    headers: dict[str, str],
    access_log: Path,
    processes: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """The load case: ``args.load_concurrency`` clients for ``args.load_duration``
    seconds; the client-side latencies next to the server-side ones the access
    log recorded meanwhile, their ratio, the timeouts and the verdict."""
    offset = access_log.stat().st_size
    result = measure(
        args,
        base,
        make_url,
        headers,
        args.load_concurrency,
        processes,
        duration=args.load_duration,
        timeout=args.load_timeout,
    )
    time.sleep(1.0)  # the requests still in flight when the clients stopped get logged
    times = server_times(access_log, offset)
    server_p99 = round(_percentile(times, 0.99) * 1000, 1)
    result.update(
        server_requests=len(times),
        server_p50_ms=round(_percentile(times, 0.50) * 1000, 1),
        server_p99_ms=server_p99,
        server_max_ms=round(max(times, default=float("nan")) * 1000, 1),
        ratio=round(result["p99_ms"] / server_p99, 2) if server_p99 > 0 else float("nan"),
    )
    result["problems"] = load_verdict(result, args.load_max_ratio)
    return result


def load_report_line(name: str, result: dict[str, Any]) -> str:
    """The load case's lines: client and server latencies, ratio, timeouts, verdict."""
    verdict = "FAIL: " + "; ".join(result["problems"]) if result["problems"] else "PASS"
    return (
        report_line(name, result) + f"\n{'':48s} server p50 {result['server_p50_ms']:.1f} ms  p99 "
        f"{result['server_p99_ms']:.1f} ms  max {result['server_max_ms']:.1f} ms  "
        f"({result['server_requests']} logged)  client/server p99 {result['ratio']}  "
        f"timeouts {result['timeouts']}  {verdict}"
    )


def _install_wrk() -> bool:
    """Install wrk from Debian's packages when this runs as root there (as
    ``test.sh`` installs Chromium); False if that is not possible."""
    if shutil.which("wrk"):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    print("installing wrk (apt-get install -y wrk) ...", file=sys.stderr)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "wrk"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return done.returncode == 0 and shutil.which("wrk") is not None


def resolve_loadgen(args: argparse.Namespace) -> None:
    """``auto`` becomes wrk if it is (or can be) installed, else python."""
    if args.loadgen == "auto":
        args.loadgen = "wrk" if _install_wrk() else "python"
        if args.loadgen == "python":
            print(
                "wrk not found: using the Python load generator, which costs the server "
                "~1 ms of CPU per request (apt install wrk for the exact numbers)",
                file=sys.stderr,
            )
    elif args.loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--loadgen wrk: wrk is not installed (apt install wrk)")


def report_line(name: str, result: dict[str, Any], width: int = 48) -> str:
    """One human-readable line of a result."""
    line = (
        f"{name:{width}s} c={result['concurrency']:<3d} {result['rps']:8.1f} req/s  "
        f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
        f"errors {result['errors']}"
    )
    if "cpu_ms" in result:
        line += "  cpu/req " + " ".join(f"{k} {v:.1f}" for k, v in result["cpu_ms"].items())
    if "loadgen" in result:
        line += f"  ({result['loadgen']})"
    return line


def start_gunicorn(
    config_path: Path,
    port: int,
    workers: int | None,
    threads: int | None,
    access_log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """gunicorn serving the app with the production gunicorn.conf.py.

    ``workers``/``threads`` override the file's (None keeps them), through the
    environment variables the file reads, so that what it derives from them
    follows. The access log is dropped, or written to ``access_log`` in
    :data:`ACCESS_LOG_FORMAT` (see :func:`server_times`).
    """
    env = {
        **os.environ,
        "CLOCKWORK_CONFIG": str(config_path),
        "PYTHONPATH": str(ROOT),
        "CLOCKWORK_ACCESS_LOG": str(access_log or os.devnull),
    }
    if workers is not None:
        env["CLOCKWORK_WORKERS"] = str(workers)
    if threads is not None:
        env["CLOCKWORK_THREADS"] = str(threads)
    overrides = ["--access-logformat", ACCESS_LOG_FORMAT] if access_log else []
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            *overrides,
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


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options both benchmarks share."""
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="the load generator (auto: wrk, installed if possible, else python)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="wrk: seconds per case and concurrency"
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="python: requests per case and concurrency"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", default="bench")
    parser.add_argument(
        "--db-dir",
        type=Path,
        default=None,
        help="keep the database and its data here between runs (reused if it matches)",
    )
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker")
    parser.add_argument("--only", default=None, help="run only the cases whose name has this")


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options of the load case."""
    parser.add_argument(
        "--load-concurrency", type=int, default=LOAD_CONCURRENCY, help="load case: clients"
    )
    parser.add_argument(
        "--load-duration",
        type=float,
        default=LOAD_DURATION_S,
        help="load case: seconds (0 skips it)",
    )
    parser.add_argument(
        "--load-timeout",
        type=float,
        default=LOAD_TIMEOUT_S,
        help="load case: a client's timeout in seconds",
    )
    parser.add_argument(
        "--load-max-ratio",
        type=float,
        default=LOAD_MAX_RATIO,
        help="load case: the largest client p99 / server p99 that passes",
    )


def load_case(mine: list[tuple[str, int]]) -> tuple[str, Callable[[int], str]]:
    """The load case's name and path of the i-th request: a user's requests in
    turn over the jobs list, one job and the nodes list."""

    def make_url(i: int) -> str:
        if i % 3 == 0:
            return LIST_USER
        if i % 3 == 1:
            return "/api/v1/jobs/{}/{}".format(*mine[(i // 3) % len(mine)])
        return "/api/v1/nodes"

    return "load: jobs list, one job, nodes (user)", make_url


def bench_cases(mine: list[tuple[str, int]]) -> list[tuple[str, Callable[[int], str], str]]:
    """The measured cases: (name, path of the i-th request, "user" or "admin").

    ``mine`` is (cluster, job id) of some of the student's jobs, for "one job".
    """
    return [
        ("jobs list (user, state filter, 50/page)", lambda i: LIST_USER, "user"),
        ("one job", lambda i: "/api/v1/jobs/{}/{}".format(*mine[i % len(mine)]), "user"),
        ("nodes list", lambda i: "/api/v1/nodes", "user"),
        ("jobs list (admin, unfiltered, by submit time)", lambda i: LIST_ADMIN, "admin"),
    ]


def bench_tokens(db: Any) -> dict[str, str]:
    """New API tokens of the student ("user") and the admin ("admin"); those
    of earlier runs on a kept database are dropped first (a user may hold 100)."""
    from clockwork_web.auth.tokens import create_token

    tokens = {}
    for who, email in (("user", STUDENT), ("admin", ADMIN)):
        db.api_tokens.delete_many({"user_email": email, "name": "bench"})
        tokens[who], _ = create_token(db, email, "bench")
    return tokens


def student_jobs(db: Any) -> list[tuple[str, int]]:
    """(cluster, job id) of up to 100 of the student's jobs."""
    mine = [
        (d["slurm"]["cluster_name"], d["slurm"]["job_id"])
        for d in db.jobs.find({"cw.user": STUDENT}, {"slurm": 1}).limit(100)
    ]
    if not mine:
        raise RuntimeError("the student owns no job in the data set")
    return mine


def stop_gunicorn(gunicorn: subprocess.Popen[bytes] | None) -> None:
    if gunicorn is not None and gunicorn.poll() is None:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        try:
            gunicorn.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(gunicorn.pid, signal.SIGKILL)
            gunicorn.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    add_load_options(parser)
    args = parser.parse_args(argv)
    resolve_loadgen(args)

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-api-"))
    gunicorn: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    try:
        directory, db, clusters = open_dataset(args.db_dir, tmp, args.jobs, args.users, args.seed)
        server = embedded_db.status(directory)
        assert server is not None
        config_path = tmp / "clockwork.toml"
        config_path.write_text(_config_toml(server.uri, DB_NAME, clusters))
        tokens = bench_tokens(db)
        mine = student_jobs(db)

        port = _free_port()
        access_log = tmp / "access.log"
        gunicorn = start_gunicorn(config_path, port, args.workers, args.threads, access_log)
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, gunicorn)
        processes = process_groups(server.pid, gunicorn.pid)

        auth = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
        cases = [(name, make_url, auth[who]) for name, make_url, who in bench_cases(mine)]
        results = []
        for name, make_url, headers in cases:
            if args.only and args.only not in name:
                continue
            _measure(base, make_url, headers, 8, WARMUP_PER_CASE)
            for concurrency in args.concurrency:
                result = {
                    "endpoint": name,
                    **measure(args, base, make_url, headers, concurrency, processes),
                }
                results.append(result)
                print(report_line(name, result))
        load: dict[str, Any] | None = None
        name, make_url = load_case(mine)
        if args.load_duration > 0 and not (args.only and args.only not in name):
            _measure(base, make_url, auth["user"], 8, WARMUP_PER_CASE)
            load = {
                "endpoint": name,
                **measure_load(args, base, make_url, auth["user"], access_log, processes),
            }
            print(load_report_line(name, load))
        print(json.dumps({"results": results, "load": load}))
        return 1 if load and load["problems"] else 0
    finally:
        stop_gunicorn(gunicorn)
        if directory is not None:
            close_dataset(directory, keep=args.db_dir is not None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
