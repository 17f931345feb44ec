"""Write parsed records into MongoDB: bulk, idempotent, only what changed.

One pass per batch of jobs (``batch_size``, default 1000):

1. ONE ``find`` on ``users.account_keys`` maps the batch's Slurm usernames
   (``"<cluster>/<username>"``) to Clockwork users (emails);
2. ONE ``find`` by ``_id`` reads the batch's ``job_digests`` documents: a
   fingerprint per job (of its ``slurm`` part and mapped user), 1000 job ids
   per document. Jobs whose fingerprint matches are unchanged and cost
   nothing more: no read of their document, no write;
3. ONE ``find`` loads the stored documents of the other jobs by natural key
   (``slurm.cluster_name`` + ``slurm.job_id`` ``$in``; the ``job_key`` index),
   and each is diffed against its stored ``slurm`` part;
4. state changes go to ``job_events`` first (deterministic ``_id``, so a re-run
   after a crash re-inserts nothing), then the jobs are written: new ones
   inserted whole (:func:`clockwork_core.schema.job_document`), changed ones
   with ``$set`` of the changed dotted paths only (``slurm.job_state``, ...),
   then the fingerprints.

Why the digests: on the embedded server (and less so on MongoDB) reading a
job document costs about as much as writing it, so a re-scrape that re-read
every job could never be much faster than the first one. ``cw.last_seen`` is
therefore the last scrape that *changed* the job; when the cluster's jobs were
last confirmed is ``cluster_status.last_success``. Anything that deletes job
documents (an archiver) must delete ``job_digests`` too (dropping the whole
collection is safe: it only forces one full diff).

Events. A state change of a known job gives ``{old_state, new_state}``. A job
seen for the first time gives an event with ``old_state: None`` (so a job that
started and ended while the scraper was down is still notified), except on a
cluster's very first scrape (``new_job_events=False``), which is a backfill of
history nobody should be notified about.

Crash safety: every write is keyed and idempotent and the watermark
(``cluster_status.last_success``) only moves after everything is stored
(:func:`finish_scrape`), so a killed scrape re-run converges to the state of
one clean run. A lease in ``cluster_status`` (:func:`acquire_lease`) keeps two
scrapers of one cluster from running at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from clockwork_core.hostlist import HostlistError, expand
from clockwork_core.schema import (
    JOB_FIELDS,
    NODE_FIELDS,
    Job,
    Node,
    job_document,
    node_document,
    state_bucket,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
#: Job ids per ``job_digests`` document (one document holds their fingerprints).
DIGEST_BUCKET = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DUPLICATE_KEY = 11000


class LeaseHeld(Exception):
    """Another scraper holds this cluster's lease."""

    def __init__(self, cluster_name: str, owner: str | None, until: datetime | None) -> None:
        self.cluster_name = cluster_name
        self.owner = owner
        self.until = until
        super().__init__(
            f"cluster {cluster_name!r} is being scraped by {owner} (lease until {until})"
        )


@dataclass(slots=True)
class StoreCounts:
    """What one store pass did."""

    jobs_new: int = 0
    jobs_updated: int = 0
    jobs_unchanged: int = 0
    nodes: int = 0
    events: int = 0
    skipped: int = 0

    def add(self, other: StoreCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


# --------------------------------------------------------------------------- diffing


def _norm(value: Any) -> Any:
    """A value as it comes back from the database: UTC-aware, ms precision, lists."""
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _same(new: Any, old: Any) -> bool:
    if new == old:
        return True
    if isinstance(new, datetime | dict | list | tuple):
        return _norm(new) == _norm(old)
    return False


def diff_fields(new: dict[str, Any], old: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The fields of ``new`` that differ from ``old`` (missing in ``old`` counts as changed)."""
    changed: dict[str, Any] = {}
    for name in names:
        value = new.get(name)
        if name not in old or not _same(value, old[name]):
            changed[name] = value
    return changed


def event_id(cluster_name: str, job_id: int, old: str | None, new: str, job: Job) -> str:
    """Deterministic id of a state-change event, so a re-run cannot duplicate it.

    The start time is part of it: a requeued job that runs again gets a new one.
    """
    start = int(job.start_time.timestamp()) if job.start_time else 0
    return f"{cluster_name}:{job_id}:{old or '-'}:{new}:{start}"


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _node_names(nodes: str | None) -> list[str]:
    try:
        return expand(nodes)
    except HostlistError:
        return []


# --------------------------------------------------------------------------- jobs


def map_users(db: Database[Any], cluster_name: str, usernames: Iterable[str]) -> dict[str, str]:
    """Slurm username -> Clockwork user email on ``cluster_name``, in ONE query."""
    keys = sorted({f"{cluster_name}/{u}" for u in usernames if u})
    if not keys:
        return {}
    found: dict[str, str] = {}
    prefix = len(cluster_name) + 1
    for user in db.users.find({"account_keys": {"$in": keys}}, {"email": 1, "account_keys": 1}):
        for key in user.get("account_keys") or []:
            if key in keys:
                found[key[prefix:]] = user["email"]
    return found


def _insert_ignoring_duplicates(collection: Any, docs: list[dict[str, Any]]) -> int:
    """Insert, skipping documents whose key already exists (a re-run); returns how many new."""
    if not docs:
        return 0
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise
        return int(exc.details.get("nInserted", 0))


def fingerprint(job: Job, user: str | None) -> str:
    """A short digest of what the store would write for ``job`` (its slurm part + user)."""
    text = repr((sorted((k, _norm(v)) for k, v in job.to_dict().items()), user))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _digest_id(cluster_name: str, job_id: int) -> str:
    return f"{cluster_name}:{job_id // DIGEST_BUCKET}"


def store_job_batch(
    db: Database[Any],
    cluster_name: str,
    jobs: list[Job],
    *,
    scrape_id: str,
    now: datetime,
    new_job_events: bool = True,
    on_changed: Callable[[list[Job]], None] | None = None,
) -> StoreCounts:
    """Store one batch of jobs of one cluster (see the module docstring).

    ``on_changed`` gets the jobs that were new or changed (the exporters' feed).
    """
    counts = StoreCounts()
    # the last record of a job id wins (sacct may list a requeued job twice)
    by_id: dict[int, Job] = {}
    for job in jobs:
        if job.cluster_name != cluster_name:
            counts.skipped += 1
            log.warning(
                "job %s is of cluster %r, not %r: skipped",
                job.job_id,
                job.cluster_name,
                cluster_name,
            )
            continue
        by_id[job.job_id] = job
    if not by_id:
        return counts
    users = map_users(db, cluster_name, {j.username for j in by_id.values() if j.username})
    prints = {jid: fingerprint(job, users.get(job.username or "")) for jid, job in by_id.items()}
    digests = {
        d["_id"]: d.get("fp") or {}
        for d in db.job_digests.find(
            {"_id": {"$in": sorted({_digest_id(cluster_name, jid) for jid in by_id})}}
        )
    }
    suspects = [
        jid
        for jid in by_id
        if digests.get(_digest_id(cluster_name, jid), {}).get(str(jid)) != prints[jid]
    ]
    counts.jobs_unchanged = len(by_id) - len(suspects)
    if not suspects:
        return counts
    stored = {
        doc["slurm"]["job_id"]: doc
        for doc in db.jobs.find(
            {"slurm.cluster_name": cluster_name, "slurm.job_id": {"$in": suspects}},
            {"_id": 0, "slurm": 1, "cw.user": 1, "cw.bucket": 1},
        )
    }

    inserts: list[dict[str, Any]] = []
    updates: list[UpdateOne] = []
    written: list[Job] = []
    events: list[dict[str, Any]] = []
    for job_id in suspects:
        job = by_id[job_id]
        user = users.get(job.username or "")
        old = stored.get(job_id)
        if old is None:
            written.append(job)
            inserts.append(job_document(job, user=user, seen=now, scrape_id=scrape_id))
            if new_job_events:
                events.append(_event(cluster_name, job, user, None, now))
            continue
        changed = diff_fields(job.to_dict(), old["slurm"], JOB_FIELDS)
        old_user = (old.get("cw") or {}).get("user")
        if not changed and user == old_user:
            counts.jobs_unchanged += 1  # only its digest was missing (a re-run)
            continue
        written.append(job)
        update: dict[str, Any] = {f"slurm.{k}": v for k, v in changed.items()}
        update["cw.last_seen"] = now
        update["cw.last_scrape_id"] = scrape_id
        if user != old_user:
            update["cw.user"] = user
        if "nodes" in changed:
            update["cw.node_names"] = _node_names(job.nodes)
        if "job_state" in changed or "bucket" not in (old.get("cw") or {}):
            update["cw.bucket"] = state_bucket(job.job_state)
        updates.append(
            UpdateOne(
                {"slurm.cluster_name": cluster_name, "slurm.job_id": job_id}, {"$set": update}
            )
        )
        old_state = old["slurm"].get("job_state")
        if "job_state" in changed and old_state != job.job_state:
            events.append(_event(cluster_name, job, user, old_state, now))

    # Order matters for crash safety: events, then jobs, then digests. Dying
    # after the events: the re-run finds the same diff and the same event ids
    # (ignored as duplicates). Dying before the digests: the re-run reads the
    # stored jobs again, finds them up to date, and only writes the digests.
    counts.events = _insert_ignoring_duplicates(db.job_events, events)
    inserted = _insert_ignoring_duplicates(db.jobs, inserts)
    if inserted < len(inserts):
        # inserted meanwhile by someone else (crash leftovers were read above):
        # fall back to keyed updates of the whole slurm part
        for doc in inserts:
            slurm = doc["slurm"]
            updates.append(
                UpdateOne(
                    {"slurm.cluster_name": cluster_name, "slurm.job_id": slurm["job_id"]},
                    {
                        "$set": {
                            **{f"slurm.{k}": v for k, v in slurm.items()},
                            "cw.last_seen": now,
                            "cw.bucket": doc["cw"]["bucket"],
                        }
                    },
                )
            )
    counts.jobs_new = inserted
    if updates:
        db.jobs.bulk_write(updates, ordered=False)
    counts.jobs_updated = len(updates) - (len(inserts) - inserted)
    by_bucket: dict[str, dict[str, str]] = {}
    for jid in suspects:
        by_bucket.setdefault(_digest_id(cluster_name, jid), {})[f"fp.{jid}"] = prints[jid]
    db.job_digests.bulk_write(
        [UpdateOne({"_id": key}, {"$set": fps}, upsert=True) for key, fps in by_bucket.items()],
        ordered=False,
    )
    if on_changed is not None and written:
        on_changed(written)
    return counts


def _event(
    cluster_name: str, job: Job, user: str | None, old_state: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "_id": event_id(cluster_name, job.job_id, old_state, job.job_state, job),
        "cluster_name": cluster_name,
        "job_id": job.job_id,
        "user": user,
        "old_state": old_state,
        "new_state": job.job_state,
        "time": now,
        "exit_code": job.exit_code,
        "job_name": job.name,
        "delivered": False,
    }


def store_jobs(
    db: Database[Any],
    cluster_name: str,
    jobs: Iterable[Job],
    *,
    scrape_id: str,
    now: datetime | None = None,
    new_job_events: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_changed: Callable[[list[Job]], None] | None = None,
) -> StoreCounts:
    """Store a stream of jobs batch by batch (memory stays bounded by ``batch_size``)."""
    now = now or datetime.now(UTC)
    total = StoreCounts()
    for batch in _batches(jobs, batch_size):
        total.add(
            store_job_batch(
                db,
                cluster_name,
                batch,
                scrape_id=scrape_id,
                now=now,
                new_job_events=new_job_events,
                on_changed=on_changed,
            )
        )
    return total


# --------------------------------------------------------------------------- nodes


def store_nodes(
    db: Database[Any],
    cluster_name: str,
    nodes: Iterable[Node],
    *,
    scrape_id: str,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> StoreCounts:
    """Upsert nodes like jobs: one find per batch, ``$set`` of what changed."""
    now = now or datetime.now(UTC)
    counts = StoreCounts()
    for batch in _batches(nodes, batch_size):
        by_name = {n.name: n for n in batch if n.cluster_name == cluster_name}
        counts.skipped += len(batch) - len(by_name)
        stored = {
            doc["slurm"]["name"]: doc["slurm"]
            for doc in db.nodes.find(
                {"slurm.cluster_name": cluster_name, "slurm.name": {"$in": list(by_name)}},
                {"_id": 0, "slurm": 1},
            )
        }
        inserts: list[dict[str, Any]] = []
        ops: list[Any] = []
        for name, node in by_name.items():
            old = stored.get(name)
            if old is None:
                inserts.append(node_document(node, seen=now, scrape_id=scrape_id))
                continue
            changed = diff_fields(node.to_dict(), old, NODE_FIELDS)
            update = {f"slurm.{k}": v for k, v in changed.items()}
            update["cw.last_seen"] = now
            update["cw.last_scrape_id"] = scrape_id
            ops.append(
                UpdateOne(
                    {"slurm.cluster_name": cluster_name, "slurm.name": name}, {"$set": update}
                )
            )
        _insert_ignoring_duplicates(db.nodes, inserts)
        if ops:
            db.nodes.bulk_write(ops, ordered=False)
        counts.nodes += len(by_name)
    return counts


# --------------------------------------------------------------------------- cluster_status


def _ensure_status(db: Database[Any], cluster_name: str) -> None:
    db.cluster_status.update_one(
        {"cluster_name": cluster_name},
        {
            "$setOnInsert": {
                "cluster_name": cluster_name,
                "lease_owner": None,
                "lease_until": _EPOCH,
            }
        },
        upsert=True,
    )


def acquire_lease(
    db: Database[Any], cluster_name: str, owner: str, *, seconds: float, now: datetime | None = None
) -> dict[str, Any]:
    """Take the cluster's scrape lease with ONE atomic find_one_and_update.

    Returns the status document (the watermark is in it). Raises
    :class:`LeaseHeld` while another owner's lease has not expired; an
    expired lease (its holder died) is taken over.
    """
    now = now or datetime.now(UTC)
    with contextlib.suppress(DuplicateKeyError):  # created concurrently: fine
        _ensure_status(db, cluster_name)
    doc = db.cluster_status.find_one_and_update(
        {"cluster_name": cluster_name, "lease_until": {"$lt": now}},
        {
            "$set": {
                "lease_owner": owner,
                "lease_until": now + timedelta(seconds=seconds),
                "last_attempt": now,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        held = db.cluster_status.find_one({"cluster_name": cluster_name}) or {}
        holder = held.get("lease_owner")
        if holder and _holder_is_dead(holder):
            # the holder died on this host: take over atomically, from it only
            doc = db.cluster_status.find_one_and_update(
                {"cluster_name": cluster_name, "lease_owner": holder},
                {
                    "$set": {
                        "lease_owner": owner,
                        "lease_until": now + timedelta(seconds=seconds),
                        "last_attempt": now,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
        if doc is None:
            raise LeaseHeld(cluster_name, holder, held.get("lease_until"))
    _active_leases.add(owner)
    return doc


#: Lease owners of scrapes running in this process.
_active_leases: set[str] = set()


def new_lease_owner() -> str:
    """A lease owner id: ``host:pid:random`` (so a dead holder on this host is recognised)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    """True if ``holder`` ran on this host and its process (or its scrape) is gone."""
    host, _, rest = holder.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only the lease's expiry tells
    pid = int(pid_text)
    if pid == os.getpid():
        return holder not in _active_leases
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_local(owner: str) -> None:
    """Forget a lease this process held but could not release (its database is gone).

    The stored lease then counts as dead, so the next scrape here may take it.
    """
    _active_leases.discard(owner)


def release_lease(db: Database[Any], cluster_name: str, owner: str) -> None:
    """Give the lease back (only if we still hold it)."""
    _active_leases.discard(owner)
    db.cluster_status.update_one(
        {"cluster_name": cluster_name, "lease_owner": owner},
        {"$set": {"lease_owner": None, "lease_until": _EPOCH}},
    )


def last_success(db: Database[Any], cluster_name: str) -> datetime | None:
    """The watermark: when the last complete scrape of the cluster started."""
    doc = db.cluster_status.find_one({"cluster_name": cluster_name}, {"last_success": 1})
    return (doc or {}).get("last_success")


@dataclass(slots=True)
class ScrapeOutcome:
    """What :func:`finish_scrape` records in ``cluster_status``."""

    started: datetime
    duration_s: float
    counts: StoreCounts = field(default_factory=StoreCounts)
    slurm_version: str | None = None
    window_start: datetime | None = None
    error: str | None = None
    #: Parse errors (records skipped) and export failures: the scrape still succeeded.
    warnings: list[str] = field(default_factory=list)


def finish_scrape(db: Database[Any], cluster_name: str, owner: str, outcome: ScrapeOutcome) -> None:
    """Record the outcome and release the lease in one update.

    On success the watermark ``last_success`` moves to when this scrape
    *started* (its sacct window ended there), so nothing that happened during
    the scrape can fall between two windows.
    """
    update: dict[str, Any] = {
        "last_attempt": outcome.started,
        "duration_s": round(outcome.duration_s, 3),
        "slurm_version": outcome.slurm_version,
        "window_start": outcome.window_start,
        "counts": outcome.counts.as_dict(),
        "warnings": outcome.warnings[:20],
        "lease_owner": None,
        "lease_until": _EPOCH,
    }
    if outcome.error is None:
        update["last_success"] = outcome.started
        update["last_error_message"] = None
    else:
        update["last_error"] = outcome.started
        update["last_error_message"] = outcome.error[:2000]
    _active_leases.discard(owner)
    db.cluster_status.update_one(
        {"cluster_name": cluster_name, "lease_owner": owner}, {"$set": update}
    )


def record_failure(db: Database[Any], cluster_name: str, when: datetime, message: str) -> None:
    """Record an error for a cluster whose scrape never got the lease or a database."""
    db.cluster_status.update_one(
        {"cluster_name": cluster_name},
        {
            "$set": {
                "last_attempt": when,
                "last_error": when,
                "last_error_message": message[:2000],
            },
            "$setOnInsert": {"lease_owner": None, "lease_until": _EPOCH},
        },
        upsert=True,
    )
