#!/usr/bin/env python3
"""Benchmark the REST API under gunicorn over 100,000 generated jobs.

    python scripts/bench_api.py [--jobs 100000] [--users 300] [--db-dir DIR]
                                [--loadgen auto|wrk|python] [--duration S]
                                [--requests N] [--workers N] [--threads N]

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
database, the gunicorn workers and the load generator spent per request; the
LAST line is one JSON object ``{"results": [{"endpoint", "concurrency", "rps",
"p50_ms", "p99_ms", "errors", "cpu_ms", "loadgen"}, ...]}``. Everything it
started is stopped at the end.

``--db-dir DIR`` keeps the database and its data in DIR between runs: a data
set of the same size and seed already there is reused (loading 100,000 jobs
takes minutes), its job indexes are brought in line with ``INDEXES`` (extra
ones dropped), and the server is stopped (not purged) at the end. Note that
the generated times are relative to when the data was loaded.
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
    '\\nWRK-JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad))
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
) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` threads, one requests.Session each.

    With ``processes``, also the CPU milliseconds per request each group spent.
    """
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
    }
    if processes:
        after = _group_cpu(processes)
        result["cpu_ms"] = {
            k: round((after[k] - before[k]) * 1000 / max(n, 1), 2) for k in processes
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
) -> dict[str, Any]:
    """Like :func:`_measure`, with wrk sending requests for ``duration`` seconds."""
    import resource

    paths = list(dict.fromkeys(make_url(i) for i in range(100)))
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
                f"--timeout={int(REQUEST_TIMEOUT_S)}s",
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
) -> dict[str, Any]:
    """One measured run with the load generator ``args.loadgen`` names."""
    if args.loadgen == "wrk":
        result = _measure_wrk(base, make_url, headers, concurrency, args.duration, processes)
    else:
        result = _measure(base, make_url, headers, concurrency, args.requests, processes)
    return {**result, "loadgen": args.loadgen}


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
    config_path: Path, port: int, workers: int | None, threads: int | None
) -> subprocess.Popen[bytes]:
    """gunicorn serving the app with the production gunicorn.conf.py (access log dropped).

    ``workers``/``threads`` override the file's (None keeps them); the connection
    cap per worker follows the threads, as the file sets it.
    """
    overrides: list[str] = []
    if workers is not None:
        overrides += ["--workers", str(workers)]
    if threads is not None:
        overrides += ["--threads", str(threads), "--worker-connections", str(2 * threads)]
    env = {
        **os.environ,
        "CLOCKWORK_CONFIG": str(config_path),
        "PYTHONPATH": str(ROOT),
        "CLOCKWORK_ACCESS_LOG": os.devnull,
    }
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
        gunicorn = start_gunicorn(config_path, port, args.workers, args.threads)
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
        print(json.dumps({"results": results}))
        return 0
    finally:
        stop_gunicorn(gunicorn)
        if directory is not None:
            close_dataset(directory, keep=args.db_dir is not None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
