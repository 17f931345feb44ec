#!/usr/bin/env python3
"""The ceiling the database puts on bench_api's requests per second.

    python scripts/bench_db_ceiling.py [--db-dir DIR] [--clients 1 2 4]
                                       [--duration S] [--only TEXT]

For each case of ``bench_api.py``, the app answers a few requests in this
process (Flask's test client, the same configuration) while a pymongo command
listener records the database commands the last one sent: the user lookup of
the token check, then the case's own queries. Those exact commands are then
replayed, with no web app in the path, from 1, 2 and 4 client processes for
``--duration`` seconds each. The replay reads the answers as raw BSON, so the
clients decode nothing and leave the cores to the database.
``--show-commands`` prints what was recorded.

Prints, per case and number of clients, the replayed requests/s and the
database's CPU milliseconds per request. No web app in front of this database
answers more requests/s than the best of these: with c requests in flight their
mean latency is at least c / that rate (Little's law), which the last column
gives for c=16. The LAST line is one JSON object ``{"results": [{"endpoint",
"clients", "rps", "db_cpu_ms", "commands", "min_mean_ms_c16"}, ...]}``.

It uses ``bench_api``'s data set (``--db-dir`` keeps and reuses it, as there).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import bson
import psutil
import pymongo
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import monitoring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_api  # noqa: E402

from test_common import embedded_db  # noqa: E402

#: Requests the app answers before the recorded one: they fill the caches a
#: steady state has (count totals, listing windows, the token cache).
WARMUP_REQUESTS = 3
#: Parts of a command that belong to the session it was sent in, not to the query.
SESSION_FIELDS = frozenset({"lsid", "$clusterTime", "$db", "$readPreference", "txnNumber"})
RAW = CodecOptions(document_class=RawBSONDocument)
#: A command recorded as (database name, the command as BSON).
Recorded = tuple[str, bytes]


class CommandRecorder(monitoring.CommandListener):
    """Keeps the commands one thread sends while recording is on."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.commands: list[Recorded] = []

    def start(self) -> None:
        self.commands = []
        self.thread = threading.get_ident()

    def stop(self) -> list[Recorded]:
        self.thread = None
        return self.commands

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.thread != threading.get_ident():
            return  # another thread's (a count renewed in the background, say)
        command = {k: v for k, v in event.command.items() if k not in SESSION_FIELDS}
        self.commands.append((event.database_name, bson.encode(command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def record_case(client: Any, recorder: CommandRecorder, path: str, token: str) -> list[Recorded]:
    """The database commands of one steady-state request of ``path``."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(WARMUP_REQUESTS):
        client.get(path, headers=headers)
    recorder.start()
    try:
        response = client.get(path, headers=headers)
    finally:
        commands = recorder.stop()
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.get_data()!r}")
    return commands


def replay(uri: str, commands: list[Recorded], duration: float, start: Any, out: Any) -> None:
    """Send ``commands`` in turn, as fast as answers come, for ``duration`` seconds
    from when every client is ready (``start``, a barrier); put (rounds, seconds)
    on ``out``: one round is one request."""
    client: pymongo.MongoClient = pymongo.MongoClient(uri, maxPoolSize=1)
    decoded = [(name, bson.decode(raw)) for name, raw in commands]

    def one_round() -> None:
        for name, command in decoded:
            answer = client[name].command(command, codec_options=RAW)
            cursor = answer.get("cursor")
            if cursor is not None and cursor["id"]:
                collection = cursor["ns"].split(".", 1)[1]
                client[name].command("killCursors", collection, cursors=[cursor["id"]])

    try:
        one_round()  # connected, and the answer checked, before the clock starts
        start.wait()
        rounds = 0
        started = time.monotonic()
        while time.monotonic() - started < duration:
            one_round()
            rounds += 1
        out.put((rounds, time.monotonic() - started))
    finally:
        client.close()


def measure(
    uri: str, server_pid: int, commands: list[Recorded], clients: int, duration: float
) -> dict[str, Any]:
    """Requests/s and the database's CPU per request, ``clients`` processes replaying."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(clients + 1)
    out = context.Queue()
    server = psutil.Process(server_pid)
    processes = [
        context.Process(target=replay, args=(uri, commands, duration, start, out))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=60)
    before = sum(server.cpu_times()[:2])
    runs = [out.get(timeout=duration + 60) for _ in processes]
    cpu = sum(server.cpu_times()[:2]) - before
    for process in processes:
        process.join()
    rounds = sum(n for n, _ in runs)
    rps = sum(n / seconds for n, seconds in runs)
    return {
        "clients": clients,
        "rps": round(rps, 1),
        "db_cpu_ms": round(cpu * 1000 / max(rounds, 1), 2),
        "commands": len(commands),
        "min_mean_ms_c16": round(16_000 / rps, 1) if rps else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_db_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", default="bench")
    parser.add_argument(
        "--db-dir", type=Path, default=None, help="keep the data set here and reuse it"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--only", default=None, help="run only the cases whose name has this")
    parser.add_argument(
        "--show-commands",
        action="store_true",
        help="print each case's recorded commands (Extended JSON) to stderr",
    )
    args = parser.parse_args(argv)

    # before any client exists: a listener applies to the clients created after it
    recorder = CommandRecorder()
    monitoring.register(recorder)
    from clockwork_core.config import load_config
    from clockwork_web import create_app

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-ceiling-"))
    directory: Path | None = None
    try:
        directory, db, clusters = bench_api.open_dataset(
            args.db_dir, tmp, args.jobs, args.users, args.seed
        )
        server = embedded_db.status(directory)
        assert server is not None
        config_path = tmp / "clockwork.toml"
        config_path.write_text(bench_api._config_toml(server.uri, bench_api.DB_NAME, clusters))
        tokens = bench_api.bench_tokens(db)
        cases = bench_api.bench_cases(bench_api.student_jobs(db))
        app = create_app(load_config(config_path, env={}))
        results = []
        with app.test_client() as client:
            for name, make_url, who in cases:
                if args.only and args.only not in name:
                    continue
                commands = record_case(client, recorder, make_url(0), tokens[who])
                if args.show_commands:
                    for database, command in commands:
                        shown = json_util.dumps(bson.decode(command))
                        print(f"{name} | {database} | {shown}", file=sys.stderr)
                for clients in args.clients:
                    result = {
                        "endpoint": name,
                        **measure(server.uri, server.pid, commands, clients, args.duration),
                    }
                    results.append(result)
                    print(
                        f"{name:48s} clients={clients}  {result['rps']:7.1f} req/s  "
                        f"db cpu/req {result['db_cpu_ms']:5.2f} ms  "
                        f"({result['commands']} commands)  "
                        f"c=16 mean >= {result['min_mean_ms_c16']} ms"
                    )
        print(json.dumps({"results": results}))
        return 0
    finally:
        if directory is not None:
            bench_api.close_dataset(directory, keep=args.db_dir is not None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
