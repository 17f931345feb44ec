"""The jobs query builder: parameter validation and the filters it builds (no database)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from clockwork_web.errors import BadRequest
from clockwork_web.jobs.query import (
    NOTHING,
    JobFilters,
    build_job_query,
    parse_datetime,
    parse_job_filters,
)


@dataclass(frozen=True)
class FakeUser:
    email: str
    staff: bool = False
    accounts: tuple[str, ...] = ("mila", "narval")

    @property
    def sees_all_jobs(self) -> bool:
        return self.staff

    @property
    def clusters(self) -> frozenset[str]:
        return frozenset(self.accounts)


USER = FakeUser("a@x.org")
STAFF = FakeUser("s@x.org", staff=True)
KNOWN = ("mila", "narval")


def args(**kw: Any) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in kw.items()}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"user[$ne]": ["x"]}, "user[$ne]"),
        ({"$where": ["1"]}, "$where"),
        ({"user": ["$ne"]}, "user"),
        ({"per_page": ["100000"]}, "per_page"),
        ({"per_page": ["0"]}, "per_page"),
        ({"page": ["0"]}, "page"),
        ({"page": ["-1"]}, "page"),
        ({"page": ["1", "2"]}, "page"),
        ({"submitted_after": ["yesterday"]}, "submitted_after"),
        ({"submitted_before": ["2024-13-45"]}, "submitted_before"),
        ({"job_id": ["abc"]}, "job_id"),
        ({"job_id": ["1,2,x"]}, "job_id"),
        ({"array_job_id": ["1.5"]}, "array_job_id"),
        ({"sort": ["__proto__"]}, "sort"),
        ({"sort": ["slurm.job_id"]}, "sort"),
        ({"order": ["sideways"]}, "order"),
        ({"state": ["EXPLODED"]}, "state"),
        ({"prop_value": ["v"]}, "prop_value"),
        ({"prop_name": ["a.b"]}, "prop_name"),
        ({"name": ["x" * 1000]}, "name"),
        ({"colour": ["blue"]}, "colour"),
        (
            {"submitted_after": ["2024-02-01"], "submitted_before": ["2024-01-01"]},
            "submitted_after",
        ),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(query: dict, param: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_job_filters(query)
    assert info.value.param == param
    assert param in info.value.message


def test_lists_accept_repeats_and_commas() -> None:
    filters = parse_job_filters(args(job_id=["1,2", "3", "2"], cluster="mila,narval"))
    assert filters.job_ids == (1, 2, 3)
    assert filters.clusters == ("mila", "narval")


def test_state_buckets_expand_to_base_states() -> None:
    filters = parse_job_filters(args(state="running,pending"))
    assert "RUNNING" in filters.states and "SUSPENDED" in filters.states
    assert "PENDING" in filters.states and "COMPLETED" not in filters.states


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T12:30:00Z", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T14:30:00+02:00", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("1709296200", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_dates_are_iso_or_epoch_in_utc(text: str, expected: datetime) -> None:
    assert parse_datetime(text, "d") == expected


def test_defaults() -> None:
    filters = parse_job_filters({}, per_page_default=25)
    assert (filters.sort, filters.order, filters.page, filters.per_page) == (
        "submit_time",
        -1,
        1,
        25,
    )
    assert parse_job_filters(args(sort="name")).order == 1
    assert parse_job_filters(args(sort="name", order="desc")).order == -1


def _flat(query: dict[str, Any]) -> None:
    assert not any(key.startswith("$") for key in query), query


def test_user_sees_own_jobs_without_redundant_cluster_clause() -> None:
    query, sort = build_job_query(parse_job_filters({}), USER, known_clusters=KNOWN)
    assert query == {"cw.user": "a@x.org"}
    assert sort == [("slurm.submit_time", -1), ("slurm.job_id", -1)]


def test_user_without_account_on_every_cluster_gets_a_cluster_clause() -> None:
    query, _ = build_job_query(
        parse_job_filters({}), USER, known_clusters=("mila", "narval", "cedar")
    )
    assert query == {"cw.user": "a@x.org", "slurm.cluster_name": {"$in": ["mila", "narval"]}}


def test_user_asking_for_hidden_cluster_or_other_user_gets_nothing() -> None:
    for params in (args(cluster="cedar"), args(user="b@x.org")):
        query, _ = build_job_query(parse_job_filters(params), USER, known_clusters=KNOWN)
        assert query == NOTHING


def test_staff_sees_everything_and_filters_freely() -> None:
    query, sort = build_job_query(parse_job_filters({}), STAFF, known_clusters=KNOWN)
    assert query == {}
    assert sort == [("slurm.submit_time", -1)]
    query, _ = build_job_query(
        parse_job_filters(args(user="b@x.org", cluster="cedar", state="COMPLETED")), STAFF
    )
    assert query == {
        "cw.user": "b@x.org",
        "slurm.cluster_name": "cedar",
        "cw.bucket": "COMPLETED",  # the whole bucket: no state clause
    }


def test_every_filter_together_stays_flat_and_ordered() -> None:
    filters = parse_job_filters(
        args(
            cluster="mila",
            user="a@x.org",
            state="FAILED",
            job_id="5,6",
            array_job_id="4",
            name="a.b*(c)",
            partition="long",
            account="def-x",
            submitted_after="2024-01-01",
            submitted_before="2024-02-01",
            sort="job_id",
            order="asc",
        )
    )
    query, sort = build_job_query(filters, USER, known_clusters=KNOWN)
    _flat(query)
    assert list(query)[:3] == ["slurm.job_id", "slurm.array_job_id", "cw.user"]
    assert query["slurm.name"] == {"$regex": r"a\.b\*\(c\)", "$options": "i"}
    assert query["slurm.submit_time"] == {
        "$gte": datetime(2024, 1, 1, tzinfo=UTC),
        "$lt": datetime(2024, 2, 1, tzinfo=UTC),
    }
    assert sort == [("slurm.job_id", 1)]


def test_prop_matches_become_job_id_and_cluster_clauses() -> None:
    filters = replace(parse_job_filters(args(prop_name="k")), prop_matches=(("mila", 7),))
    query, _ = build_job_query(filters, USER, known_clusters=KNOWN)
    assert query == {"slurm.job_id": 7, "cw.user": "a@x.org", "slurm.cluster_name": "mila"}
    none = replace(filters, prop_matches=())
    assert build_job_query(none, USER)[0] == NOTHING


def test_filters_dataclass_skip() -> None:
    assert JobFilters(page=3, per_page=20).skip == 40
