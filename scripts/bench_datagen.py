#!/usr/bin/env python3
"""Time the data generator (generation only, nothing stored) and check its memory.

    python scripts/bench_datagen.py [--jobs 100000] [--stream-jobs 1000000] [--users 300]

Each measurement runs in a fresh child process so its peak RSS is its own: the
first times ``--jobs`` jobs, the second iterates ``--stream-jobs`` jobs and
shows that the stream's memory stays flat (peak RSS close to the first's).
``--stream-jobs 0`` skips the second.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import resource
import subprocess
import time


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(n_jobs: int, n_users: int) -> dict[str, float]:
    from test_common.datagen import (
        generate_clusters,
        generate_jobs,
        generate_nodes,
        generate_users,
    )

    baseline = _rss_mb()
    started = time.perf_counter()
    clusters = generate_clusters(1)
    users = generate_users(n_users, clusters, 1)
    nodes = list(generate_nodes(clusters, 1))
    count = 0
    for _job in generate_jobs(n_jobs, users, nodes, 1):
        count += 1
    seconds = time.perf_counter() - started
    return {
        "jobs": count,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(count / max(seconds, 1e-9)),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def _measure(n_jobs: int, n_users: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(n_jobs), "--users", str(n_users)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_datagen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--stream-jobs", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.users)))
        return 0

    runs = [("generate", args.jobs)]
    if args.stream_jobs:
        runs.append(("stream", args.stream_jobs))
    results = {}
    for label, n_jobs in runs:
        result = _measure(n_jobs, args.users)
        results[label] = result
        print(
            f"{label:9s} {result['jobs']:>9,} jobs in {result['seconds']:7.2f} s "
            f"= {result['jobs_per_s']:>8,} jobs/s; peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(baseline {result['baseline_rss_mb']:.0f} MB)",
            flush=True,
        )
    if "stream" in results:
        growth = results["stream"]["peak_rss_mb"] - results["generate"]["peak_rss_mb"]
        ratio = results["stream"]["jobs"] / max(results["generate"]["jobs"], 1)
        print(f"memory: {ratio:.0f}x the jobs cost {growth:+.1f} MB of peak RSS (bounded stream)")
    target = 60.0 * args.jobs / 100_000
    ok = results["generate"]["seconds"] < target
    print(f"target < {target:.0f} s for {args.jobs:,} jobs: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
