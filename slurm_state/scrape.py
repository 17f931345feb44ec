"""One scrape of one cluster: fetch -> parse -> anonymize -> store, and the CLI around it.

``scrape_cluster`` never raises for a cluster problem (unreachable host, bad
output, database gone): it returns a :class:`ScrapeResult` with ``ok=False``
and the message, and records it in ``cluster_status`` when it can. The CLI
runs every cluster asked for, prints one line per cluster and a summary, and
exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from clockwork_core.config import Config, load_config_or_exit
from clockwork_core.db import ensure_indexes_once, get_database
from clockwork_core.periodic import run_periodically
from clockwork_core.schema import Job, Node
from slurm_state import store
from slurm_state.fetch import Fetcher, FetchError, Report, make_fetcher, scrape_window
from slurm_state.parsers import SlurmParseError, parse_jobs, parse_nodes

#: How many parse errors a result keeps (all are counted).
MAX_REPORTED_ERRORS = 20


@dataclass
class ScrapeResult:
    """What one scrape of one cluster did."""

    cluster_name: str
    ok: bool
    duration_s: float
    counts: store.StoreCounts = field(default_factory=store.StoreCounts)
    error: str | None = None
    parse_errors: list[str] = field(default_factory=list)
    export_errors: list[str] = field(default_factory=list)
    slurm_version: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    dry_run: bool = False

    def line(self) -> str:
        """The one progress line the CLI prints for this cluster."""
        c = self.counts
        head = f"{self.cluster_name}: {'ok' if self.ok else 'FAILED'}"
        if self.dry_run:
            head += " (dry run)"
        body = (
            f"jobs new={c.jobs_new} updated={c.jobs_updated} unchanged={c.jobs_unchanged} "
            f"nodes={c.nodes} events={c.events} skipped={c.skipped} {self.duration_s:.2f}s"
        )
        tail = f" error: {self.error}" if self.error else ""
        return f"{head} {body}{tail}"


def _parse_jobs(
    report: Report, cluster_name: str, version: str | None, tz: str, errors: list[Any]
) -> Iterator[Job]:
    if report.records is not None:
        return report.records  # type: ignore[return-value]
    return parse_jobs(
        report.stream,  # type: ignore[arg-type]
        fmt=report.fmt,  # type: ignore[arg-type]
        cluster_name=cluster_name,
        source=report.source,
        errors=errors,
        slurm_version=version,
        timezone=tz,
    )


def _parse_nodes(
    report: Report, cluster_name: str, version: str | None, errors: list[Any]
) -> Iterator[Node]:
    if report.records is not None:
        return report.records  # type: ignore[return-value]
    return parse_nodes(
        report.stream,
        fmt=report.fmt,
        cluster_name=cluster_name,
        source=report.source,
        errors=errors,
        slurm_version=version,
    )


def make_job_anonymizer(config: Config, cluster_name: str) -> Callable[[Job], Job] | None:
    """The cluster's anonymization policy as a function, or None when it keeps everything."""
    policy = config.clusters[cluster_name].anonymize
    if (policy.usernames, policy.job_names, policy.paths, policy.comments) == ("keep",) * 4:
        return None
    from slurm_state.anonymize import make_anonymizer

    key = config.scraper.anonymize_key
    return make_anonymizer(policy, key.get_secret_value().encode() if key else None)


def _counted(items: Iterable[Any], counter: list[int]) -> Iterator[Any]:
    for item in items:
        counter[0] += 1
        yield item


def scrape_cluster(
    config: Config,
    db: Database[Any],
    cluster_name: str,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    fetcher: Fetcher | None = None,
    exporters: list[Callable[[list[Job]], None]] | None = None,
) -> ScrapeResult:
    """Scrape one cluster into ``db``; never raises for a cluster or database problem.

    ``now`` (default: the clock) is the end of the sacct window and, on success,
    the new watermark. ``dry_run`` fetches and parses but writes nothing and
    takes no lease. ``exporters`` get every batch of new or changed jobs.
    """
    started = now or datetime.now(UTC)
    clock = time.monotonic()
    result = ScrapeResult(cluster_name=cluster_name, ok=False, duration_s=0.0, dry_run=dry_run)
    cluster = config.clusters.get(cluster_name)
    if cluster is None:
        result.error = f"no cluster {cluster_name!r} in the configuration"
        return result
    owner = store.new_lease_owner()
    scrape_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    errors: list[Any] = []
    leased = False
    try:
        if dry_run:
            watermark = store.last_success(db, cluster_name)
        else:
            # a database where init-db never ran: without the unique keys the lease
            # and the upserts are unsafe, and without the others every batch scans
            ensure_indexes_once(db)
            # the lease runs on the real clock, even when ``now`` is injected
            status = store.acquire_lease(
                db, cluster_name, owner, seconds=config.scraper.lease_seconds
            )
            leased = True
            watermark = status.get("last_success")
        window = scrape_window(
            watermark,
            started,
            overlap_minutes=config.scraper.overlap_minutes,
            initial_lookback_days=config.scraper.initial_lookback_days,
        )
        result.window_start, result.window_end = window.start, window.end
        fetcher = fetcher or make_fetcher(cluster_name, cluster)
        try:
            result.slurm_version = fetcher.slurm_version()
            anonymize = make_job_anonymizer(config, cluster_name)

            def on_changed(jobs: list[Job]) -> None:
                for export in exporters or []:
                    try:
                        export(jobs)
                    except Exception as exc:  # an optional sink must not stop the scrape
                        if len(result.export_errors) < MAX_REPORTED_ERRORS:
                            result.export_errors.append(str(exc))

            for job_report in fetcher.job_reports(window.start, window.end):
                with job_report as report:
                    jobs: Iterable[Job] = _parse_jobs(
                        report, cluster_name, result.slurm_version, cluster.timezone, errors
                    )
                    if anonymize is not None:
                        jobs = map(anonymize, jobs)
                    if dry_run:
                        n = [0]
                        for _ in _counted(jobs, n):
                            pass
                        result.counts.jobs_new += n[0]
                    else:
                        result.counts.add(
                            store.store_jobs(
                                db,
                                cluster_name,
                                jobs,
                                scrape_id=scrape_id,
                                now=started,
                                new_job_events=not window.first,
                                batch_size=config.scraper.batch_size,
                                on_changed=on_changed if exporters else None,
                            )
                        )
            with fetcher.nodes() as report:
                nodes = _parse_nodes(report, cluster_name, result.slurm_version, errors)
                if dry_run:
                    result.counts.nodes = sum(1 for _ in nodes)
                else:
                    result.counts.add(
                        store.store_nodes(
                            db,
                            cluster_name,
                            nodes,
                            scrape_id=scrape_id,
                            now=started,
                            batch_size=config.scraper.batch_size,
                        )
                    )
        finally:
            fetcher.close()
        result.ok = True
    except store.LeaseHeld as exc:
        # not this cluster's failure: the other scraper will record its outcome
        result.error = str(exc)
        result.duration_s = time.monotonic() - clock
        return result
    except FetchError as exc:
        result.error = str(exc)
    except SlurmParseError as exc:  # the whole report is unreadable (single records are skipped)
        result.error = f"unreadable report: {exc}"
    except PyMongoError as exc:
        result.error = f"database: {type(exc).__name__}: {str(exc)[:300]}"
    except Exception as exc:  # a parser or anonymizer bug must not stop the other clusters
        result.error = f"{type(exc).__name__}: {exc}"
    result.counts.skipped += len(errors)
    result.parse_errors = [str(e) for e in errors[:MAX_REPORTED_ERRORS]]
    result.duration_s = time.monotonic() - clock
    if not dry_run:
        _record(db, cluster_name, owner, leased, result, started)
    return result


def _record(
    db: Database[Any],
    cluster_name: str,
    owner: str,
    leased: bool,
    result: ScrapeResult,
    started: datetime,
) -> None:
    """Write the outcome to cluster_status (best effort: the database may be the problem)."""
    outcome = store.ScrapeOutcome(
        started=started,
        duration_s=result.duration_s,
        counts=result.counts,
        slurm_version=result.slurm_version,
        window_start=result.window_start,
        error=result.error,
        warnings=result.parse_errors + [f"export: {e}" for e in result.export_errors],
    )
    try:
        if leased:
            store.finish_scrape(db, cluster_name, owner, outcome)
        elif result.error:
            store.record_failure(db, cluster_name, started, result.error)
    except PyMongoError as exc:
        store.release_local(owner)
        if result.ok:
            result.ok = False
            result.error = f"database: {type(exc).__name__}: {str(exc)[:300]}"


def select_clusters(config: Config, names: list[str] | None) -> list[str]:
    """The clusters to scrape: those named (in order) or all of the config."""
    if not names:
        return list(config.clusters)
    unknown = [n for n in names if n not in config.clusters]
    if unknown:
        raise SystemExit(
            f"clockwork scrape: unknown cluster(s) {unknown}; configured: {sorted(config.clusters)}"
        )
    return names


def scrape_all(
    config: Config,
    db: Database[Any],
    names: list[str],
    *,
    dry_run: bool = False,
    out: Any = None,
) -> list[ScrapeResult]:
    """Scrape each cluster in turn, printing its line as it finishes."""
    out = out or sys.stdout
    exporters = _exporters(config)
    results = []
    for name in names:
        result = scrape_cluster(config, db, name, dry_run=dry_run, exporters=exporters)
        print(result.line(), file=out, flush=True)
        for message in result.parse_errors:
            print(f"  skipped: {message}", file=sys.stderr)
        for message in result.export_errors:
            print(f"  export failed: {message}", file=sys.stderr)
        results.append(result)
    if not dry_run and config.scraper.prometheus_textfile:
        _write_textfile(db, Path(config.scraper.prometheus_textfile).expanduser())
    return results


def _exporters(config: Config) -> list[Callable[[list[Job]], None]]:
    if not config.scraper.elasticsearch_url:
        return []
    from slurm_state.export_elasticsearch import ElasticsearchSink

    return [ElasticsearchSink(config.scraper.elasticsearch_url).send]


def _write_textfile(db: Database[Any], path: Path) -> None:
    from slurm_state.export_prometheus import write_textfile

    try:
        write_textfile(db, path)
    except (OSError, PyMongoError) as exc:
        print(f"clockwork scrape: cannot write {path}: {exc}", file=sys.stderr)


def summary(results: list[ScrapeResult], seconds: float) -> str:
    """The last line of a scrape run."""
    total = store.StoreCounts()
    for r in results:
        total.add(r.counts)
    failed = [r.cluster_name for r in results if not r.ok]
    return (
        f"{len(results)} cluster(s), {len(failed)} failed{' ' + str(failed) if failed else ''}: "
        f"jobs new={total.jobs_new} updated={total.jobs_updated} unchanged={total.jobs_unchanged} "
        f"nodes={total.nodes} events={total.events} skipped={total.skipped} in {seconds:.2f}s"
    )


# --------------------------------------------------------------------------- CLI


def add_scrape_arguments(parser: argparse.ArgumentParser) -> None:
    """``scrape [--cluster NAME ... | --all] [--dry-run]``."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--cluster", action="append", metavar="NAME", help="scrape this cluster (repeatable)"
    )
    which.add_argument(
        "--all", action="store_true", help="scrape every configured cluster (default)"
    )
    parser.add_argument("--dry-run", action="store_true", help="fetch and parse, write nothing")
    if not any(a.dest == "config" for a in parser._actions):
        parser.add_argument(
            "--config", default=None, help="config file (default: $CLOCKWORK_CONFIG)"
        )


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """``watch --every SECONDS [--cluster NAME ...]`` for containers."""
    add_scrape_arguments(parser)
    parser.add_argument(
        "--every", type=float, default=60.0, help="seconds between runs (default 60)"
    )
    parser.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)


def _open(args: argparse.Namespace) -> tuple[Config, Database[Any], list[str]]:
    config = load_config_or_exit(getattr(args, "config", None))
    names = select_clusters(config, None if args.all else args.cluster)
    if not names:
        raise SystemExit("clockwork scrape: no clusters configured")
    return config, get_database(config.database), names


def run_scrape(args: argparse.Namespace) -> int:
    """The ``scrape`` command: 0 if every cluster succeeded, 1 otherwise."""
    config, db, names = _open(args)
    clock = time.monotonic()
    results = scrape_all(config, db, names, dry_run=args.dry_run)
    print(summary(results, time.monotonic() - clock), flush=True)
    return 0 if all(r.ok for r in results) else 1


def run_watch(args: argparse.Namespace) -> int:
    """The ``watch`` command: scrape, sleep until the next period, forever (or SIGTERM)."""
    config, db, names = _open(args)

    def one_pass() -> int:
        clock = time.monotonic()
        results = scrape_all(config, db, names, dry_run=args.dry_run)
        print(summary(results, time.monotonic() - clock), flush=True)
        return 0 if all(r.ok for r in results) else 1

    return run_periodically(
        one_pass, loop=True, every=args.every, iterations=args.iterations or None
    )
