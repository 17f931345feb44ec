#!/usr/bin/env python3
"""Benchmark the scraper: parse rates, ingest vs raw bulk_write, RSS, re-scrape speedup.

    .venv/bin/python scripts/bench_scrape.py [--jobs 100000] [--seed 1] [--keep DIR]

Generates N jobs (test_common.datagen), renders them as ``sacct --parsable2``
(the fetcher's delimiter and fields) and ``sacct --json`` (22.05 shape) files,
starts its own embedded database, then measures, in this one process:

* parse rate of each format (jobs/s, streaming from the file);
* end-to-end ingest rate: parse the psv report + store (first scrape of the
  cluster: every job new);
* the raw ``bulk_write`` rate of the same documents (InsertOne, unordered,
  batches of the same size) into a collection with the same indexes: only the
  write calls are timed;
* peak RSS of the process;
* re-scrape of the same, unchanged report: how much faster than the first.

The last line is one JSON object (keys: jobs, parse_psv_jobs_per_s,
parse_json_jobs_per_s, ingest_jobs_per_s, raw_write_jobs_per_s,
ingest_to_raw_ratio, peak_rss_mb, rescrape_speedup).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import InsertOne

from clockwork_core.db import INDEXES, ensure_indexes, get_client
from clockwork_core.schema import job_document
from slurm_state import store
from slurm_state.parsers import SACCT_DELIMITER, SACCT_FIELDS, parse_jobs
from test_common import datagen, embedded_db, sacct_render

CLUSTER = "benchcluster"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n_jobs: int, seed: int, directory: Path) -> tuple[Path, Path, list[dict]]:
    users = datagen.generate_users(200, [CLUSTER], seed, now=NOW)
    nodes = list(datagen.generate_nodes([CLUSTER], seed, now=NOW))
    psv, js = directory / "sacct.psv", directory / "sacct.json"
    with psv.open("w", encoding="utf-8") as out:
        jobs = datagen.generate_jobs(n_jobs, users, nodes, seed, now=NOW)
        out.writelines(sacct_render.psv_lines(jobs, SACCT_FIELDS, SACCT_DELIMITER))
    with js.open("w", encoding="utf-8") as out:
        jobs = datagen.generate_jobs(n_jobs, users, nodes, seed, now=NOW)
        out.writelines(sacct_render.json_chunks(jobs))
    return psv, js, users


def parse_rate(path: Path, fmt: str) -> tuple[int, float]:
    errors: list = []
    started = time.perf_counter()
    with path.open("rb") as fh:
        n = sum(
            1
            for _ in parse_jobs(fh, fmt=fmt, cluster_name=CLUSTER, source=path.name, errors=errors)
        )
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} parse errors, first: {errors[0]}", file=sys.stderr)
    return n, elapsed


def ingest(db, path: Path, scrape_id: str, batch: int) -> tuple[store.StoreCounts, float]:
    started = time.perf_counter()
    with path.open("rb") as fh:
        jobs = parse_jobs(fh, fmt="psv", cluster_name=CLUSTER, source=path.name)
        counts = store.store_jobs(
            db, CLUSTER, jobs, scrape_id=scrape_id, now=NOW, new_job_events=False, batch_size=batch
        )
    return counts, time.perf_counter() - started


def raw_write(db, path: Path, batch: int) -> tuple[int, float]:
    """Insert the same documents with bulk_write; time only the writes."""
    collection = db["jobs_raw"]
    collection.create_indexes(INDEXES["jobs"])
    spent = 0.0
    n = 0
    ops: list[InsertOne] = []
    with path.open("rb") as fh:
        for job in parse_jobs(fh, fmt="psv", cluster_name=CLUSTER, source=path.name):
            ops.append(InsertOne(job_document(job, user=None, seen=NOW, scrape_id="raw")))
            if len(ops) == batch:
                started = time.perf_counter()
                collection.bulk_write(ops, ordered=False)
                spent += time.perf_counter() - started
                n += len(ops)
                ops = []
    if ops:
        started = time.perf_counter()
        collection.bulk_write(ops, ordered=False)
        spent += time.perf_counter() - started
        n += len(ops)
    return n, spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=store.DEFAULT_BATCH_SIZE)
    parser.add_argument("--keep", type=Path, default=None, help="keep the reports in DIR")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_scrape_"))
    reports = args.keep or work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        t = time.perf_counter()
        psv, js, users = generate(args.jobs, args.seed, reports)
        print(
            f"generated {args.jobs} jobs in {time.perf_counter() - t:.1f}s: "
            f"psv {psv.stat().st_size / 1e6:.0f} MB, json {js.stat().st_size / 1e6:.0f} MB",
            flush=True,
        )
        n_psv, t_psv = parse_rate(psv, "psv")
        print(f"parse psv:  {n_psv} jobs in {t_psv:.2f}s = {n_psv / t_psv:,.0f} jobs/s", flush=True)
        n_js, t_js = parse_rate(js, "json")
        print(f"parse json: {n_js} jobs in {t_js:.2f}s = {n_js / t_js:,.0f} jobs/s", flush=True)
        print(f"peak RSS after parsing: {peak_rss_mb():.0f} MB", flush=True)

        server = embedded_db.up(work / "db")
        db = get_client(server.uri, 30_000)["bench"]
        ensure_indexes(db)
        db.users.insert_many([{k: v for k, v in u.items() if k != "_id"} for u in users])

        counts, t_ingest = ingest(db, psv, "first", args.batch)
        print(
            f"ingest (parse+store, first scrape): {counts.jobs_new} new in {t_ingest:.2f}s = "
            f"{counts.jobs_new / t_ingest:,.0f} jobs/s",
            flush=True,
        )
        n_raw, t_raw = raw_write(db, psv, args.batch)
        print(
            f"raw bulk_write: {n_raw} docs in {t_raw:.2f}s = {n_raw / t_raw:,.0f} docs/s",
            flush=True,
        )
        again, t_again = ingest(db, psv, "second", args.batch)
        print(
            f"re-scrape unchanged: {again.jobs_unchanged} unchanged, {again.jobs_updated} updated "
            f"in {t_again:.2f}s ({t_ingest / t_again:.1f}x faster)",
            flush=True,
        )
        ingest_rate = counts.jobs_new / t_ingest
        raw_rate = n_raw / t_raw
        result = {
            "jobs": args.jobs,
            "parse_psv_jobs_per_s": round(n_psv / t_psv),
            "parse_json_jobs_per_s": round(n_js / t_js),
            "ingest_jobs_per_s": round(ingest_rate),
            "raw_write_jobs_per_s": round(raw_rate),
            "ingest_to_raw_ratio": round(ingest_rate / raw_rate, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rescrape_speedup": round(t_ingest / t_again, 2),
        }
        print(json.dumps(result), flush=True)
        return 0
    finally:
        if server is not None:
            embedded_db.down(work / "db", purge=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
