"""Jobs: listing, one job, and the user props a job's owner attaches to it.

Plain functions taking the database and the user (no Flask here). Visibility
is decided by :mod:`clockwork_web.jobs.query`; a job the user may not see is
reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
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
from clockwork_web.memo import Memo

log = logging.getLogger(__name__)

#: What a job looks like in the API: Clockwork's bookkeeping of scrapes is dropped.
JOB_PROJECTION: dict[str, int] = {"_id": 0, "cw.last_scrape_id": 0}


def public_job(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as JOB_PROJECTION shows it, trimmed here.

    The embedded database applies an exclusion projection by deep-copying
    every document (a fifth of its time on a page of jobs); dropping two keys
    here costs nothing.
    """
    doc.pop("_id", None)
    cw = doc.get("cw")
    if isinstance(cw, dict):
        cw.pop("last_scrape_id", None)
    return doc


#: Clauses that make a listing selective enough to need no submit-time window.
SELECTIVE_CLAUSES = frozenset({"slurm.job_id", "slurm.array_job_id", "cw.user", "slurm.username"})

#: Submit-time windows tried, newest first, before reading the whole index:
#: the first is WINDOW_START wide; each next one is sized from the number of
#: jobs the previous one held (grown WINDOW_GROWTH_MIN to _MAX times).
WINDOW_START = timedelta(minutes=15)
WINDOW_GROWTH_MIN = 2.0
WINDOW_GROWTH_MAX = 16.0
WINDOW_MAX = timedelta(days=366 * 5)
#: The remembered width covers the page's span this much wider than it was
#: last time, and never less than WINDOW_MIN.
WINDOW_MARGIN = 1.1
WINDOW_MIN = timedelta(minutes=1)
#: Slices of listings that need at most this many jobs are sorted here.
SORT_HERE_MAX = 1000
#: At most this many queries per slice: a plan splits the ``$in`` lists of the
#: indexed fields into one equality query each.
MAX_SPLIT = 16

#: A count that took longer than SLOW_COUNT_S is reused for COUNT_TTL_S
#: seconds, or COUNT_TTL_PER_S times its cost if longer (at most COUNT_TTL_MAX_S):
#: a total shown next to a page may lag new jobs by that much. Once expired, it
#: is still served for up to COUNT_STALE_S more seconds while one background
#: thread counts again, so no request after the first waits for a slow count
#: (the embedded database's whole-collection estimate takes ~0.5 s).
SLOW_COUNT_S = 0.01
COUNT_TTL_S = 60.0
COUNT_TTL_PER_S = 300.0
COUNT_TTL_MAX_S = 600.0
COUNT_STALE_S = 600.0


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
        # key -> (expires at, value, stale until)
        self._values: dict[str, tuple[float, int, float]] = {}
        self._refreshing: set[str] = set()

    def get(self, key: str) -> tuple[int, bool] | None:
        """(value, needs a refresh) or None; True is returned to one caller only."""
        with self._lock:
            hit = self._values.get(key)
            now = time.monotonic()
            if hit is None or hit[2] <= now:
                return None
            if hit[0] > now:
                return hit[1], False
            claim = key not in self._refreshing
            self._refreshing.add(key)
            return hit[1], claim

    def put(self, key: str, value: int, ttl: float, stale: float = 0.0) -> None:
        with self._lock:
            if len(self._values) > 1000:
                self._values.clear()
            expires = time.monotonic() + ttl
            self._values[key] = (expires, value, expires + stale)
            self._refreshing.discard(key)

    def release(self, key: str) -> None:
        """A refresh failed: let the next caller try again."""
        with self._lock:
            self._refreshing.discard(key)


_counts = _CountCache()


#: The window width a listing needed last time: where the next one starts. A
#: starting guess only (the slices grow from it as needed), so a stale value
#: costs a query, never a wrong page.
_widths: Memo[timedelta] = Memo()


def cached_count(
    db: Database[Any], collection: str, query: Mapping[str, Any], *, ttl: float | None = None
) -> int:
    """The number of documents matching ``query``; slow counts are cached briefly.

    With ``ttl``, every count is reused for at least that many seconds. An
    expired slow count is returned as is while a background thread renews it.
    """
    key = f"{db.name}.{collection}:{sorted(query.items())!r}"
    cached = _counts.get(key)
    if cached is not None:
        value, refresh = cached
        if refresh:
            threading.Thread(
                target=_renew_count,
                args=(db, collection, dict(query), key, ttl),
                name="clockwork-count",
                daemon=True,
            ).start()
        return value
    return _count_and_cache(db, collection, query, key, ttl)


def _count_and_cache(
    db: Database[Any], collection: str, query: Mapping[str, Any], key: str, ttl: float | None
) -> int:
    started = time.monotonic()
    if not query:
        total = db[collection].estimated_document_count()
    else:
        total = db[collection].count_documents(dict(query))
    elapsed = time.monotonic() - started
    keep = min(COUNT_TTL_MAX_S, max(COUNT_TTL_S, COUNT_TTL_PER_S * elapsed))
    if elapsed > SLOW_COUNT_S:
        _counts.put(key, total, max(keep, ttl or 0.0), stale=COUNT_STALE_S)
    elif ttl:
        _counts.put(key, total, ttl)
    return total


def _renew_count(
    db: Database[Any], collection: str, query: Mapping[str, Any], key: str, ttl: float | None
) -> None:
    try:
        _count_and_cache(db, collection, query, key, ttl)
    except Exception:  # the stale value stays; the next request tries again
        _counts.release(key)
        log.warning("renewing the count %s failed", key, exc_info=True)


def count_jobs(db: Database[Any], query: Mapping[str, Any]) -> int:
    """The number of jobs matching ``query`` (see :func:`cached_count`)."""
    return cached_count(db, "jobs", query)


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class WindowPlan:
    """How a newest-first listing is read through submit-time slices.

    Each slice is read with one query per entry of ``parts``: equalities that
    an index follows with ``slurm.submit_time`` (the product of the ``$in``
    lists of those fields), so the database reads only the jobs of that slice.
    ``residual`` holds the other clauses: sent along when ``parts`` is just
    ``{}`` (the submit-time clause then leads the filter, and the database
    plans it on the submit-time index), else checked here on what the parts
    return (a clause beside them would make the database plan the whole filter
    on its first field alone).
    """

    parts: tuple[dict[str, Any], ...]
    residual: dict[str, Any]

    @property
    def residual_here(self) -> bool:
        return bool(self.residual) and self.parts != ({},)


def _eq_values(clause: Any) -> list[Any] | None:
    """The values an equality or ``$in`` clause accepts, None for other clauses."""
    if isinstance(clause, dict):
        values = clause.get("$in") if set(clause) == {"$in"} else None
        if not isinstance(values, list) or any(isinstance(v, (dict, list)) for v in values):
            return None
        return values
    if isinstance(clause, list) or clause is None:
        return None
    return [clause]


def _matcher(path: str, clause: Any) -> Callable[[Mapping[str, Any]], bool] | None:
    """A check of one residual clause on a job document, None if not supported here."""
    top, _, field = path.partition(".")
    if not field or "." in field:
        return None
    values = _eq_values(clause)
    if values is not None:
        accepted = list(values)

        def check_in(doc: Mapping[str, Any]) -> bool:
            return (doc.get(top) or {}).get(field) in accepted

        return check_in
    if (
        isinstance(clause, dict)
        and set(clause) <= {"$regex", "$options"}
        and isinstance(clause.get("$regex"), str)
        and clause.get("$options", "") in ("", "i")
    ):
        pattern = re.compile(clause["$regex"], re.IGNORECASE if clause.get("$options") else 0)

        def check_regex(doc: Mapping[str, Any]) -> bool:
            value = (doc.get(top) or {}).get(field)
            return isinstance(value, str) and pattern.search(value) is not None

        return check_regex
    return None


def window_plan(
    query: Mapping[str, Any], sort: list[tuple[str, int]], max_split: int | None = None
) -> WindowPlan | None:
    """How a newest-first listing is read through windows, or None (one plain query).

    The parts use the index whose equality fields (before ``submit_time``) the
    filter pins most selectively: the user's, then the most fields, then the
    fewest queries (at most MAX_SPLIT per slice). With no such field, the
    submit-time index alone serves a listing with no selective clause.
    """
    if sort[0] != ("slurm.submit_time", -1):
        return None
    bounds = query.get("slurm.submit_time")
    if bounds is not None and not (isinstance(bounds, dict) and set(bounds) <= {"$gte", "$lt"}):
        return None
    others = {k: v for k, v in query.items() if k != "slurm.submit_time"}
    pinned = {k: vs for k, v in others.items() if (vs := _eq_values(v)) is not None}
    if any(not vs for vs in pinned.values()):
        return None  # an empty $in: nothing matches, the plain query says so at once
    best: tuple[tuple[bool, int, int], frozenset[str]] | None = None
    for prefix in WINDOWABLE:
        if not prefix <= set(pinned):
            continue
        combos = math.prod(len(pinned[f]) for f in prefix)
        if combos > (MAX_SPLIT if max_split is None else max_split):
            continue
        score = (bool(prefix & SELECTIVE_CLAUSES), len(prefix), -combos)
        if best is None or score > best[0]:
            best = (score, prefix)
    if best is None:
        return None
    prefix = best[1]
    residual = {k: v for k, v in others.items() if k not in prefix}
    if not prefix:
        if SELECTIVE_CLAUSES & set(query):
            return None  # job ids, a user...: the plain query reads fewer jobs
        return WindowPlan(parts=({},), residual=residual)
    if any(_matcher(k, v) is None for k, v in residual.items()):
        return None
    fields = sorted(prefix)
    parts = tuple(
        dict(zip(fields, combo, strict=True))
        for combo in itertools.product(*(pinned[f] for f in fields))
    )
    return WindowPlan(parts=parts, residual=residual)


def _sort_order(
    sort: list[tuple[str, int]],
) -> tuple[Callable[[Mapping[str, Any]], tuple[Any, ...]], bool]:
    """A Python key and ``reverse`` flag giving ``sort``'s order (missing values
    lowest, as MongoDB).

    When every key runs the same way (the usual case) the list is sorted with
    ``reverse``: no wrapper object per value, a few times faster than
    :class:`_Reversed`, which only mixed directions need.
    """
    paths = [(*path.partition(".")[::2], direction) for path, direction in sort]
    descending = all(direction < 0 for *_, direction in paths)
    uniform = descending or all(direction > 0 for *_, direction in paths)

    def value(doc: Mapping[str, Any], top: str, field: str) -> Any:
        v = (doc.get(top) or {}).get(field) if field else doc.get(top)
        if v.__class__ is datetime and v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v

    if uniform:

        def key(doc: Mapping[str, Any]) -> tuple[Any, ...]:
            out: list[Any] = []
            for top, field, _ in paths:
                v = value(doc, top, field)
                out += (False, 0) if v is None else (True, v)
            return tuple(out)

        return key, descending

    def mixed_key(doc: Mapping[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for top, field, direction in paths:
            v = value(doc, top, field)
            if direction < 0:
                out += (True, 0) if v is None else (False, _Reversed(v))
            else:
                out += (False, 0) if v is None else (True, v)
        return tuple(out)

    return mixed_key, False


class _Reversed:
    """Wraps a value so that it sorts in reverse (descending keys of a compound sort)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.v < self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.v == other.v)


def _windowed_find(
    db: Database[Any],
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    skip: int,
    limit: int,
    now: datetime,
    plan: WindowPlan,
    projection: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Newest-first listing read through consecutive submit-time slices.

    The embedded database decodes every candidate before it sorts and limits;
    reading the newest slice first (its width remembered from the last such
    listing), then older slices sized from what the previous ones held, keeps
    a page of 50 to the few dozen documents around it instead of all the
    matching ones. Slices do not overlap, so each slice's documents, sorted,
    follow the previous slice's. The last slice has no lower bound; it also
    takes the jobs without a submit time (which sort last).
    """
    bounds = dict(query.get("slurm.submit_time") or {})
    floor, ceiling = bounds.get("$gte"), bounds.get("$lt")
    checks = [_matcher(k, v) for k, v in plan.residual.items()] if plan.residual_here else []
    need = skip + limit
    key, reverse = _sort_order(sort)
    found: list[dict[str, Any]] = []
    upper: datetime | None = None
    shape = _shape(db, plan, need)
    width = _widths.get(shape) or WINDOW_START

    def read(window: dict[str, Any], bounded: bool) -> None:
        """Add the jobs of one slice, in order.

        A slice bounded below is sized to hold about a page: it is read whole
        and sorted here (the embedded database sorts a compound key in Python,
        slower than this). An unbounded one, or one for a deep page, is sorted
        and limited there.
        """
        slice_docs: list[dict[str, Any]] = []
        for part in plan.parts:
            if part:
                cursor = db.jobs.find({**part, **window}, projection)
            else:
                cursor = db.jobs.find({**window, **plan.residual}, projection)
            if not bounded:
                cursor = cursor.sort(sort)
                if not checks:
                    cursor = cursor.limit(need - len(found))
            for doc in cursor:
                if all(check(doc) for check in checks):  # type: ignore[misc]
                    slice_docs.append(doc)
        if bounded or len(plan.parts) > 1 or checks:
            slice_docs.sort(key=key, reverse=reverse)
        found.extend(slice_docs[: need - len(found)])

    while True:
        low = now - width
        last = width >= WINDOW_MAX or (floor is not None and low <= floor)
        clause: dict[str, Any] = {}
        if not last:
            clause["$gte"] = low
        elif floor is not None:
            clause["$gte"] = floor
        top = upper if ceiling is None else (ceiling if upper is None else min(upper, ceiling))
        if top is not None:
            clause["$lt"] = top
        read(
            {"slurm.submit_time": clause} if clause else {},
            bounded=not last and need <= SORT_HERE_MAX,
        )
        if last and len(found) < need and floor is None and ceiling is None and upper is not None:
            # jobs without a submit time sort last; the slices' bounds left them out
            read({"slurm.submit_time": None}, bounded=False)
        if len(found) >= need or last:
            _remember_width(shape, found, need, now)
            return found[skip:need]
        upper = low
        growth = 1.5 * need / max(len(found), 1)
        width = min(WINDOW_MAX, width * min(WINDOW_GROWTH_MAX, max(WINDOW_GROWTH_MIN, growth)))


def _shape(db: Database[Any], plan: WindowPlan, need: int) -> str:
    """The key of a listing's remembered window width."""
    return f"{db.name}:{sorted(plan.residual.items())!r}:{plan.parts!r}:{need}"


def _remember_width(shape: str, found: list[dict[str, Any]], need: int, now: datetime) -> None:
    """Start the next such listing with a window that just holds its page.

    A listing that ran out of jobs starts the next time with one unbounded slice.
    """
    if len(found) < need:
        _widths.put(shape, WINDOW_MAX)
        return
    newest = _aware((found[0].get("slurm") or {}).get("submit_time"))
    oldest = _aware((found[need - 1].get("slurm") or {}).get("submit_time"))
    if newest is None or oldest is None:
        _widths.put(shape, WINDOW_MAX)
        return
    # the margin widens the span of the page, not the quiet time since its
    # newest job: an hour without submissions must not make the window read
    # an hour's worth of older jobs more
    width = (now - oldest) + (newest - oldest) * (WINDOW_MARGIN - 1)
    _widths.put(shape, min(WINDOW_MAX, max(WINDOW_MIN, width)))


def _aware(value: Any) -> datetime | None:
    """A datetime as UTC-aware, None for anything else."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def find_jobs(
    db: Database[Any],
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    *,
    skip: int = 0,
    limit: int,
    now: datetime | None = None,
    projection: Mapping[str, Any] | None = None,
    max_split: int | None = None,
) -> list[dict[str, Any]]:
    """The jobs matching a built query (as JOB_PROJECTION shows them), read
    through windows when that helps.

    A ``projection`` listing fields must keep those the query and the sort name.
    ``max_split`` caps the queries per slice (default MAX_SPLIT): 1 reads one
    index range per slice and checks the ``$in`` clauses here, better when the
    matching jobs are among the newest anyway; a listing that ran out of jobs
    that way is split as usual the next time.
    """
    plan = window_plan(query, sort, max_split)
    # the last such listing ran out of jobs in that one range: split it after all
    exhausted = plan is not None and _widths.get(_shape(db, plan, skip + limit)) == WINDOW_MAX
    if max_split is not None and exhausted:
        plan = window_plan(query, sort)
    if plan is None:
        docs = list(db.jobs.find(query, projection).sort(sort).skip(skip).limit(limit))
    else:
        when = now or datetime.now(UTC)
        docs = _windowed_find(db, query, sort, skip, limit, when, plan, projection)
    return [public_job(doc) for doc in docs] if projection is None else docs


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
    doc = db.jobs.find_one({"slurm.cluster_name": cluster, "slurm.job_id": job_id})
    if doc is None or not _visible(doc, user):
        raise NotFound(f"no job {job_id} on cluster {cluster}")
    return public_job(doc)


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
