"""Jobs: listing, one job, and the user props a job's owner attaches to it.

Plain functions taking the database and the user (no Flask here). Visibility
is decided by :mod:`clockwork_web.jobs.query`; a job the user may not see is
reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from clockwork_web.errors import BadRequest, Conflict, Forbidden, NotFound
from clockwork_web.jobs.query import (
    JobFilters,
    UserLike,
    build_job_query,
    check_prop_key,
    prop_key_token,
)

#: What a job looks like in the API: Clockwork's bookkeeping of scrapes is dropped.
JOB_PROJECTION: dict[str, int] = {"_id": 0, "cw.last_scrape_id": 0}

#: Clauses that make a listing selective enough to need no submit-time window.
SELECTIVE_CLAUSES = frozenset({"slurm.job_id", "slurm.array_job_id", "cw.user", "slurm.username"})

#: Submit-time windows tried, newest first, before reading the whole index:
#: the first is WINDOW_START wide; each next one is sized from the number of
#: jobs the previous one held (grown WINDOW_GROWTH_MIN to _MAX times).
WINDOW_START = timedelta(minutes=15)
WINDOW_GROWTH_MIN = 2.0
WINDOW_GROWTH_MAX = 16.0
WINDOW_MAX = timedelta(days=366 * 5)

#: A count that took longer than SLOW_COUNT_S is reused for COUNT_TTL_S
#: seconds, or COUNT_TTL_PER_S times its cost if longer (at most COUNT_TTL_MAX_S):
#: a total shown next to a page may lag new jobs by that much.
SLOW_COUNT_S = 0.01
COUNT_TTL_S = 15.0
COUNT_TTL_PER_S = 300.0
COUNT_TTL_MAX_S = 600.0


def _windowable_prefixes() -> list[frozenset[str]]:
    """Equality fields that an index follows with ``slurm.submit_time``."""
    from clockwork_core.db import INDEXES

    out = []
    for model in INDEXES["jobs"]:
        keys = list(model.document["key"])
        if keys[-1] == "slurm.submit_time":
            out.append(frozenset(keys[:-1]))
    return out


WINDOWABLE = _windowable_prefixes()


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    has_next: bool


# --------------------------------------------------------------------------- counting


class _CountCache:
    """Totals of broad listings, kept briefly: counting 100,000 jobs is slow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, int]] = {}

    def get(self, key: str) -> int | None:
        with self._lock:
            hit = self._values.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            return None

    def put(self, key: str, value: int, ttl: float) -> None:
        with self._lock:
            if len(self._values) > 1000:
                self._values.clear()
            self._values[key] = (time.monotonic() + ttl, value)


_counts = _CountCache()


class _WidthMemory:
    """The window width a listing needed last time: where the next one starts.

    A starting guess only (the slices grow from it as needed), so a stale
    value costs a query, never a wrong page.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._widths: dict[str, timedelta] = {}

    def get(self, key: str) -> timedelta | None:
        with self._lock:
            return self._widths.get(key)

    def put(self, key: str, width: timedelta) -> None:
        with self._lock:
            if len(self._widths) > 5000:
                self._widths.clear()
            self._widths[key] = width


_widths = _WidthMemory()


def cached_count(db: Database[Any], collection: str, query: Mapping[str, Any]) -> int:
    """The number of documents matching ``query``; slow counts are cached briefly."""
    key = f"{db.name}.{collection}:{sorted(query.items())!r}"
    cached = _counts.get(key)
    if cached is not None:
        return cached
    started = time.monotonic()
    if not query:
        total = db[collection].estimated_document_count()
    else:
        total = db[collection].count_documents(dict(query))
    elapsed = time.monotonic() - started
    if elapsed > SLOW_COUNT_S:
        _counts.put(key, total, min(COUNT_TTL_MAX_S, max(COUNT_TTL_S, COUNT_TTL_PER_S * elapsed)))
    return total


def count_jobs(db: Database[Any], query: Mapping[str, Any]) -> int:
    """The number of jobs matching ``query`` (see :func:`cached_count`)."""
    return cached_count(db, "jobs", query)


# --------------------------------------------------------------------------- listing


def _windowed_find(
    db: Database[Any],
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    skip: int,
    limit: int,
    now: datetime,
    *,
    window_first: bool,
) -> list[dict[str, Any]]:
    """Newest-first listing read through consecutive submit-time slices.

    The embedded database materializes every candidate before it sorts and
    limits; reading the newest 15 minutes first, then older slices sized from
    what the previous ones held, keeps a page of 50 to the few hundred
    documents around it instead of all the matching ones. Slices do not
    overlap, so nothing is read twice. ``window_first`` puts the slice clause
    first, for a filter whose other clauses are not selective.
    """
    bounds = dict(query.get("slurm.submit_time") or {})
    rest = {k: v for k, v in query.items() if k != "slurm.submit_time"}
    floor, ceiling = bounds.get("$gte"), bounds.get("$lt")
    need = skip + limit
    found: list[dict[str, Any]] = []
    upper: datetime | None = None
    shape = f"{db.name}:{sorted(rest.items())!r}:{need}"
    width = _widths.get(shape) or WINDOW_START
    while width <= WINDOW_MAX:
        low = now - width
        last = floor is not None and low <= floor
        part = dict(bounds)
        if not last:
            part["$gte"] = low
        if upper is not None:
            part["$lt"] = upper if ceiling is None else min(upper, ceiling)
        clause = {"slurm.submit_time": part}
        windowed = {**clause, **rest} if window_first else {**rest, **clause}
        found.extend(db.jobs.find(windowed, JOB_PROJECTION).sort(sort).limit(need - len(found)))
        if len(found) >= need or last:
            _remember_width(shape, found, need, now)
            return found[skip:need]
        upper = low
        growth = 1.5 * need / max(len(found), 1)
        width *= min(WINDOW_GROWTH_MAX, max(WINDOW_GROWTH_MIN, growth))
    # older than every window (or no submit time at all): read the plain query
    return list(db.jobs.find(query, JOB_PROJECTION).sort(sort).skip(skip).limit(limit))


def _remember_width(shape: str, found: list[dict[str, Any]], need: int, now: datetime) -> None:
    """Start the next such listing with a window that just holds its page."""
    if len(found) < need:
        return
    oldest = (found[need - 1].get("slurm") or {}).get("submit_time")
    if isinstance(oldest, datetime):
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        _widths.put(shape, max(WINDOW_START, (now - oldest) * 1.25))


def window_plan(query: Mapping[str, Any], sort: list[tuple[str, int]]) -> str | None:
    """How a newest-first listing is read: window ``"first"``/``"last"``, or None.

    Windows help when the database can bound its reading by submit time: a
    filter of equalities that an index follows with the submit time (a user's
    jobs, in one state), or a staff listing with no selective clause.
    """
    if sort[0] != ("slurm.submit_time", -1):
        return None
    others = {k: v for k, v in query.items() if k != "slurm.submit_time"}
    if all(not isinstance(v, dict) for v in others.values()) and frozenset(others) in WINDOWABLE:
        return "last"
    if not SELECTIVE_CLAUSES & set(query):
        return "first"
    return None


def find_jobs(
    db: Database[Any],
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    *,
    skip: int = 0,
    limit: int,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The jobs matching a built query, read through windows when that helps."""
    plan = window_plan(query, sort)
    if plan is None:
        return list(db.jobs.find(query, JOB_PROJECTION).sort(sort).skip(skip).limit(limit))
    return _windowed_find(
        db, query, sort, skip, limit, now or datetime.now(UTC), window_first=plan == "first"
    )


def list_jobs(
    db: Database[Any],
    filters: JobFilters,
    user: UserLike,
    *,
    known_clusters: Iterable[str] | None = None,
    now: datetime | None = None,
) -> Page:
    """One page of the jobs ``user`` may see that match ``filters``."""
    if filters.prop_name is not None:
        filters = replace(filters, prop_matches=_prop_matches(db, filters, user))
    query, sort = build_job_query(filters, user, known_clusters=known_clusters)
    limit = filters.per_page + 1
    docs = find_jobs(db, query, sort, skip=filters.skip, limit=limit, now=now)
    has_next = len(docs) > filters.per_page
    items = docs[: filters.per_page]
    if not has_next and (items or filters.page == 1):
        total = filters.skip + len(items)
    else:
        total = count_jobs(db, query)
    return Page(
        items=items, total=total, page=filters.page, per_page=filters.per_page, has_next=has_next
    )


def _prop_matches(
    db: Database[Any], filters: JobFilters, user: UserLike
) -> tuple[tuple[str, int], ...]:
    """The (cluster, job_id) of ``user``'s jobs carrying the wanted prop."""
    name = filters.prop_name or ""
    token = name if filters.prop_value is None else prop_key_token(name, filters.prop_value)
    cursor = db.job_user_props.find(
        {"user_email": user.email, "prop_keys": token},
        {"_id": 0, "cluster_name": 1, "job_id": 1},
    ).limit(10_000)
    return tuple((d["cluster_name"], d["job_id"]) for d in cursor)


# --------------------------------------------------------------------------- one job


def _visible(doc: Mapping[str, Any], user: UserLike) -> bool:
    if user.sees_all_jobs:
        return True
    return (doc.get("cw") or {}).get("user") == user.email and (
        doc["slurm"]["cluster_name"] in user.clusters
    )


def find_job(db: Database[Any], cluster: str, job_id: int, user: UserLike) -> dict[str, Any]:
    """The job ``(cluster, job_id)`` as the API shows it; NotFound if invisible."""
    doc = db.jobs.find_one({"slurm.cluster_name": cluster, "slurm.job_id": job_id}, JOB_PROJECTION)
    if doc is None or not _visible(doc, user):
        raise NotFound(f"no job {job_id} on cluster {cluster}")
    return doc


def get_job(db: Database[Any], cluster: str, job_id: int, user: UserLike) -> dict[str, Any]:
    """The job with the caller's own props on it under ``user_props``."""
    doc = find_job(db, cluster, job_id, user)
    doc["user_props"] = get_props(db, cluster, job_id, user, check_job=False)
    return doc


# --------------------------------------------------------------------------- props


def _props_key(cluster: str, job_id: int, email: str) -> dict[str, Any]:
    return {"cluster_name": cluster, "job_id": job_id, "user_email": email}


def get_props(
    db: Database[Any], cluster: str, job_id: int, user: UserLike, *, check_job: bool = True
) -> dict[str, Any]:
    """The props ``user`` attached to the job (empty if none)."""
    if check_job:
        find_job(db, cluster, job_id, user)
    doc = db.job_user_props.find_one(_props_key(cluster, job_id, user.email), {"props": 1})
    return dict(doc["props"]) if doc else {}


def props_size(props: Mapping[str, Any]) -> int:
    """Bytes of the props as compact JSON: what the size limit applies to."""
    return len(json.dumps(props, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def prop_keys_of(props: Mapping[str, Any]) -> list[str]:
    """``prop_keys``: each name alone and ``name=value``, for indexed filtering."""
    keys: list[str] = []
    for name, value in props.items():
        keys.append(name)
        keys.append(prop_key_token(name, value))
    return keys


def _owned_job(db: Database[Any], cluster: str, job_id: int, user: UserLike) -> None:
    doc = find_job(db, cluster, job_id, user)
    if (doc.get("cw") or {}).get("user") != user.email:
        raise Forbidden("only the job's owner may change its props")


def _check_updates(updates: Any) -> dict[str, Any]:
    if not isinstance(updates, Mapping):
        raise BadRequest("must be a JSON object of prop names to values", param="props")
    for key, value in updates.items():
        check_prop_key(key)
        _check_json_value(value, key, depth=0)
    return dict(updates)


def _check_json_value(value: Any, key: str, depth: int) -> None:
    if depth > 10:
        raise BadRequest(f"value of {key!r} is nested too deeply", param="props")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("$") or "." in k or "\x00" in k:
                raise BadRequest(
                    f"value of {key!r} has an invalid key: no '.', NUL or leading '$'",
                    param="props",
                )
            _check_json_value(v, key, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json_value(v, key, depth + 1)


def _write_props(
    db: Database[Any],
    cluster: str,
    job_id: int,
    user: UserLike,
    change: Any,
    max_bytes: int,
) -> dict[str, Any]:
    """Apply ``change(props) -> props`` atomically (compare-and-set on a version)."""
    key = _props_key(cluster, job_id, user.email)
    for _attempt in range(10):
        current = db.job_user_props.find_one(key)
        old = dict(current["props"]) if current else {}
        new = change(dict(old))
        if props_size(new) > max_bytes:
            raise BadRequest(
                f"the job's props would take {props_size(new)} bytes; the limit is {max_bytes}",
                param="props",
            )
        now = datetime.now(UTC)
        fields = {"props": new, "prop_keys": prop_keys_of(new), "updated_at": now}
        if current is None:
            if not new:
                return new
            try:
                db.job_user_props.insert_one({**key, **fields, "version": 1})
            except DuplicateKeyError:
                continue
            return new
        result = db.job_user_props.update_one(
            {"_id": current["_id"], "version": current.get("version", 0)},
            {"$set": fields, "$inc": {"version": 1}},
        )
        if result.matched_count == 1:
            return new
    raise Conflict("the props changed concurrently too often; try again")


def update_props(
    db: Database[Any],
    cluster: str,
    job_id: int,
    user: UserLike,
    updates: Any,
    *,
    max_bytes: int,
) -> dict[str, Any]:
    """Merge ``updates`` into the owner's props of the job; returns the new props."""
    updates = _check_updates(updates)
    _owned_job(db, cluster, job_id, user)
    return _write_props(db, cluster, job_id, user, lambda props: {**props, **updates}, max_bytes)


def delete_props(
    db: Database[Any],
    cluster: str,
    job_id: int,
    user: UserLike,
    keys: Any,
    *,
    max_bytes: int,
) -> dict[str, Any]:
    """Remove the props named in ``keys`` (all of them if ``keys`` is None)."""
    if keys is not None:
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadRequest("must be a list of prop names", param="keys")
        for k in keys:
            check_prop_key(k, "keys")
    _owned_job(db, cluster, job_id, user)

    def change(props: dict[str, Any]) -> dict[str, Any]:
        if keys is None:
            return {}
        return {k: v for k, v in props.items() if k not in set(keys)}

    return _write_props(db, cluster, job_id, user, change, max_bytes)
