"""The jobs query builder: request parameters in, one flat MongoDB filter out.

Plain functions on plain data (no Flask, no pymongo), so every rule here is
tested directly. Two steps:

- :func:`parse_job_filters` validates every parameter of ``GET /api/v1/jobs``
  (and of the pages) and raises :class:`BadRequest` naming the bad one;
- :func:`build_job_query` turns the validated filters and the current user
  into a filter and a sort, with visibility applied.

The filter is always FLAT (no top-level ``$and``/``$or``; ``$in`` for lists)
and its most selective clause comes first: the embedded database plans a
multi-clause filter on the first clause an index serves, and a real MongoDB
plans such filters well too. ``clockwork_web_test/test_query_plans.py`` runs
``explain()`` on every shape this module produces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from clockwork_core.schema import STATE_BUCKETS, expand_states, state_bucket
from clockwork_web.errors import BadRequest

#: Public sort keys -> document paths. Job ids are stored as integers, so they
#: sort as numbers.
SORT_FIELDS: dict[str, str] = {
    "submit_time": "slurm.submit_time",
    "start_time": "slurm.start_time",
    "end_time": "slurm.end_time",
    "job_id": "slurm.job_id",
    "cluster": "slurm.cluster_name",
    "cluster_name": "slurm.cluster_name",
    "user": "cw.user",
    "username": "slurm.username",
    "job_state": "slurm.job_state",
    "state": "slurm.job_state",
    "name": "slurm.name",
}

#: Sort keys whose natural order is ascending when ``order`` is not given.
ASCENDING_BY_DEFAULT = frozenset({"cluster", "cluster_name", "user", "username", "name", "state"})

#: Every parameter ``GET /api/v1/jobs`` accepts.
JOB_PARAMS: frozenset[str] = frozenset(
    {
        "cluster",
        "user",
        "state",
        "job_id",
        "array_job_id",
        "name",
        "partition",
        "account",
        "submitted_after",
        "submitted_before",
        "prop_name",
        "prop_value",
        "sort",
        "order",
        "page",
        "per_page",
    }
)

MAX_PER_PAGE = 1000
#: The deepest page any listing serves: deeper ones are refused, not skipped to.
MAX_PAGE = 1_000_000
MAX_LIST_ITEMS = 200
MAX_VALUE_LENGTH = 256
#: No job id, epoch or page number beyond this (BSON int64 and then some).
MAX_INT = 2**53

_PARAM_NAME = re.compile(r"^[a-z_]{1,40}$")


class UserLike(Protocol):
    """What the builder needs to know about the user (``auth.access.User`` fits)."""

    email: str

    @property
    def sees_all_jobs(self) -> bool: ...

    @property
    def clusters(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class JobFilters:
    """Validated filters of a jobs listing; empty tuples / None mean "any"."""

    clusters: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    job_ids: tuple[int, ...] = ()
    array_job_id: int | None = None
    name: str | None = None
    partitions: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None
    prop_name: str | None = None
    prop_value: str | None = None
    sort: str = "submit_time"
    order: int = -1
    page: int = 1
    per_page: int = 50
    #: Filled by the service from ``job_user_props``: (cluster, job_id) pairs.
    prop_matches: tuple[tuple[str, int], ...] | None = field(default=None, compare=False)

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.per_page


# --------------------------------------------------------------------------- parsing


def _check_value(param: str, value: str) -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise BadRequest(f"longer than {MAX_VALUE_LENGTH} characters", param=param)
    if value.startswith("$"):
        raise BadRequest("values may not start with '$'", param=param)
    if "\x00" in value:
        raise BadRequest("contains a NUL character", param=param)
    return value


def _scalar(args: Mapping[str, list[str]], param: str) -> str | None:
    values = args.get(param)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("given more than once", param=param)
    value = values[0].strip()
    return _check_value(param, value) if value else None


def parse_list(args: Mapping[str, list[str]], param: str) -> tuple[str, ...]:
    """A list parameter: repeated (``a=1&a=2``) and/or comma-separated (``a=1,2``)."""
    out: list[str] = []
    for raw in args.get(param, ()):
        for part in raw.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(_check_value(param, part))
    if len(out) > MAX_LIST_ITEMS:
        raise BadRequest(f"at most {MAX_LIST_ITEMS} values", param=param)
    return tuple(out)


def parse_int(value: str, param: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A decimal integer within bounds, else BadRequest naming ``param``.

    The digits are counted before ``int()`` runs, so a number of any length
    answers "out of range" rather than reaching BSON (int64) or ``skip()``.
    """
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise BadRequest(f"{value[:40]!r} is not an integer", param=param)
    number = int(value) if len(value) <= 19 else None
    if number is None or number < minimum or number > maximum:
        raise BadRequest(f"must be between {minimum} and {maximum}", param=param)
    return number


def parse_job_id(value: str, param: str = "job_id") -> int:
    """A Slurm job id, as every route (API, pages, slurm-proxy) reads it from a URL.

    One rule so that an id no job can have (past ``MAX_INT``, not a number)
    answers the same 400 everywhere, instead of overflowing BSON's int64.
    """
    return parse_int(value.strip(), param, minimum=0)


def parse_page(value: str | None, param: str = "page") -> int:
    """A page number (1 when absent or empty), at most ``MAX_PAGE``.

    Shared by every paginated listing, API and pages: an unbounded page number
    overflows the database's ``skip`` (int64) and answered 500.
    """
    value = (value or "").strip()
    return parse_int(value, param, minimum=1, maximum=MAX_PAGE) if value else 1


def parse_per_page(
    value: str | None, *, default: int, maximum: int = MAX_PER_PAGE, param: str = "per_page"
) -> int:
    """A page size (``default`` when absent or empty) between 1 and ``maximum``."""
    value = (value or "").strip()
    return parse_int(value, param, minimum=1, maximum=maximum) if value else default


def parse_datetime(value: str, param: str) -> datetime:
    """ISO 8601 (a date or a date and time; naive means UTC) or epoch seconds."""
    if re.fullmatch(r"\d{1,11}(\.\d+)?", value):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise BadRequest("epoch seconds out of range", param=param) from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{value[:40]!r} is not an ISO 8601 date/time or epoch seconds", param=param
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is in year 0 once in UTC, 9999-12-31T23:59-10:00 in 10000
        raise BadRequest(
            f"{value[:40]!r} is out of range once converted to UTC", param=param
        ) from None


def reject_unknown(args: Mapping[str, list[str]], allowed: Iterable[str]) -> None:
    """400 on a parameter the endpoint does not know (typos, ``user[$ne]``)."""
    allowed = frozenset(allowed)
    for key in args:
        if key in allowed:
            continue
        if not _PARAM_NAME.match(key) or "$" in key:
            raise BadRequest(
                "not a parameter: operators and brackets are not accepted in names",
                param=key[:60],
            )
        raise BadRequest(
            f"unknown parameter; expected one of {', '.join(sorted(allowed))}", param=key
        )


def parse_job_filters(
    args: Mapping[str, list[str]],
    *,
    per_page_default: int = 50,
    allowed: Iterable[str] = JOB_PARAMS,
) -> JobFilters:
    """Validate the parameters of a jobs listing.

    ``args`` maps each name to its list of values (``MultiDict.to_dict(flat=False)``).
    Raises :class:`BadRequest` with ``param`` set to the offending name.
    """
    reject_unknown(args, allowed)
    states_raw = parse_list(args, "state")
    try:
        states = tuple(expand_states(list(states_raw)))
    except ValueError as exc:
        raise BadRequest(str(exc), param="state") from None
    job_ids = tuple(parse_job_id(v) for v in parse_list(args, "job_id"))
    array_raw = _scalar(args, "array_job_id")
    array_job_id = parse_int(array_raw, "array_job_id") if array_raw else None
    after_raw = _scalar(args, "submitted_after")
    before_raw = _scalar(args, "submitted_before")
    after = parse_datetime(after_raw, "submitted_after") if after_raw else None
    before = parse_datetime(before_raw, "submitted_before") if before_raw else None
    if after and before and after >= before:
        raise BadRequest("must be earlier than submitted_before", param="submitted_after")
    sort = _scalar(args, "sort") or "submit_time"
    if sort not in SORT_FIELDS:
        raise BadRequest(
            f"cannot sort on {sort[:40]!r}; use one of {', '.join(SORT_FIELDS)}", param="sort"
        )
    order_raw = (_scalar(args, "order") or "").lower()
    if order_raw not in ("", "asc", "desc"):
        raise BadRequest("must be 'asc' or 'desc'", param="order")
    if order_raw:
        order = 1 if order_raw == "asc" else -1
    else:
        order = 1 if sort in ASCENDING_BY_DEFAULT else -1
    page = parse_page(_scalar(args, "page"))
    per_page = parse_per_page(_scalar(args, "per_page"), default=per_page_default)
    prop_name = _scalar(args, "prop_name")
    prop_value = _scalar(args, "prop_value")
    if prop_value is not None and prop_name is None:
        raise BadRequest("needs prop_name", param="prop_value")
    if prop_name is not None:
        check_prop_key(prop_name, "prop_name")
    return JobFilters(
        clusters=parse_list(args, "cluster"),
        users=parse_list(args, "user"),
        states=states,
        job_ids=job_ids,
        array_job_id=array_job_id,
        name=_scalar(args, "name"),
        partitions=parse_list(args, "partition"),
        accounts=parse_list(args, "account"),
        submitted_after=after,
        submitted_before=before,
        prop_name=prop_name,
        prop_value=prop_value,
        sort=sort,
        order=order,
        page=page,
        per_page=per_page,
    )


def check_prop_key(key: Any, param: str = "props") -> str:
    """A user prop name: a non-empty string without ``$``, ``.``, ``=`` or NUL."""
    if not isinstance(key, str) or not key.strip():
        raise BadRequest("prop names must be non-empty strings", param=param)
    if len(key) > 100:
        raise BadRequest("prop names are at most 100 characters", param=param)
    if key.startswith("$") or any(c in key for c in ".=\x00"):
        raise BadRequest(
            f"invalid prop name {key[:40]!r}: no '.', '=', NUL, or leading '$'", param=param
        )
    return key


def prop_key_token(name: str, value: Any) -> str:
    """The ``prop_keys`` entry that lets ``prop_name=...&prop_value=...`` use an index."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"{name}={text}"


# --------------------------------------------------------------------------- building


def _in_or_eq(values: Iterable[Any]) -> Any:
    values = list(values)
    return values[0] if len(values) == 1 else {"$in": values}


#: A filter that matches nothing and still rides an index.
NOTHING: dict[str, Any] = {"slurm.job_id": {"$in": []}}


def build_job_query(
    filters: JobFilters,
    user: UserLike,
    *,
    known_clusters: Iterable[str] | None = None,
) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The filter and sort of a jobs listing, as ``user`` may see it.

    Visibility: staff/admin see every job; others see jobs whose ``cw.user``
    is their email, on clusters they have an account on. Because ``cw.user``
    is derived from the user's cluster accounts, the cluster clause is only
    added when it restricts something: the user asked for clusters, or has no
    account on some of ``known_clusters`` (the configured ones).
    """
    query: dict[str, Any] = {}
    if not user.sees_all_jobs:
        query["cw.user"] = user.email
        emails = [u for u in filters.users if "@" in u]
        if emails and user.email not in emails:
            # asking for someone else's jobs gives nothing, not an error:
            # whether that someone exists is not theirs to learn
            return dict(NOTHING), _sort_of(filters, empty=False)
    if filters.prop_matches is not None:
        pairs = filters.prop_matches
        if not pairs:
            return dict(NOTHING), _sort_of(filters, empty=False)
        clusters_of_props = sorted({c for c, _ in pairs})
        query["slurm.job_id"] = _in_or_eq(sorted({j for _, j in pairs}))
        query["slurm.cluster_name"] = _in_or_eq(clusters_of_props)
    if filters.job_ids:
        if "slurm.job_id" in query:
            current = query["slurm.job_id"]
            have = set(current["$in"]) if isinstance(current, dict) else {current}
            kept = sorted(have & set(filters.job_ids))
            if not kept:
                return dict(NOTHING), _sort_of(filters, empty=False)
            query["slurm.job_id"] = _in_or_eq(kept)
        else:
            query["slurm.job_id"] = _in_or_eq(filters.job_ids)
    if filters.array_job_id is not None:
        query["slurm.array_job_id"] = filters.array_job_id
    # clusters: what was asked, within what the user may see
    clusters: set[str] | None = set(filters.clusters) if filters.clusters else None
    if "slurm.cluster_name" in query:
        current = query["slurm.cluster_name"]
        have = set(current["$in"]) if isinstance(current, dict) else {current}
        clusters = have if clusters is None else clusters & have
    if not user.sees_all_jobs:
        mine = set(user.clusters)
        if clusters is not None:
            clusters &= mine
        elif known_clusters is None or not set(known_clusters) <= mine:
            clusters = mine
    if clusters is not None:
        if not clusters:
            return dict(NOTHING), _sort_of(filters, empty=False)
        query["slurm.cluster_name"] = _in_or_eq(sorted(clusters))
    if filters.users:
        emails = [u for u in filters.users if "@" in u]
        names = [u for u in filters.users if "@" not in u]
        if user.sees_all_jobs:
            if emails and names:
                raise BadRequest("give either emails or Slurm usernames, not both", param="user")
            if emails:
                query["cw.user"] = _in_or_eq(emails)
        if names:
            query["slurm.username"] = _in_or_eq(names)
    if filters.states:
        # through the bucket (indexed); the states themselves only if they are
        # not whole buckets (checked on the bucket's jobs)
        buckets = sorted({state_bucket(s) for s in filters.states})
        query["cw.bucket"] = _in_or_eq(buckets)
        if set(filters.states) != set().union(*(STATE_BUCKETS[b] for b in buckets)):
            query["slurm.job_state"] = _in_or_eq(filters.states)
    if filters.partitions:
        query["slurm.partition"] = _in_or_eq(filters.partitions)
    if filters.accounts:
        query["slurm.account"] = _in_or_eq(filters.accounts)
    if filters.submitted_after or filters.submitted_before:
        bounds: dict[str, Any] = {}
        if filters.submitted_after:
            bounds["$gte"] = filters.submitted_after
        if filters.submitted_before:
            bounds["$lt"] = filters.submitted_before
        query["slurm.submit_time"] = bounds
    if filters.name:
        query["slurm.name"] = {"$regex": re.escape(filters.name), "$options": "i"}
    return _ordered(query), _sort_of(filters, empty=not query)


#: Clause order, most selective first: the embedded database plans a filter no
#: compound index covers on its first clause that an index serves.
CLAUSE_ORDER: tuple[str, ...] = (
    "slurm.job_id",
    "slurm.array_job_id",
    "cw.user",
    "slurm.username",
    "slurm.cluster_name",
    "cw.bucket",
    "slurm.job_state",
    "slurm.submit_time",
    "slurm.partition",
    "slurm.account",
    "slurm.name",
)


def _ordered(query: dict[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(CLAUSE_ORDER)}
    return dict(sorted(query.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _sort_of(filters: JobFilters, *, empty: bool) -> list[tuple[str, int]]:
    """The sort: the chosen key, then the job id to make pages deterministic.

    An unfiltered listing sorts on the key alone, so that the key's index walk
    serves it.
    """
    path = SORT_FIELDS[filters.sort]
    if empty or path == "slurm.job_id":
        return [(path, filters.order)]
    return [(path, filters.order), ("slurm.job_id", filters.order)]
